<?php
// An application of items on PHP's own parsers, an upstream of
// tests/parsers.rs (`php -S 127.0.0.1:PORT tests/php_items.php`): a POST's
// `_method`, from the query or the form, names the method it runs, as
// Symfony and Laravel read it. Appends one JSON line per request to the
// file ITEMS_LOG names: the method it ran, the one sent, and what PHP read
// as `access_token` (query) and `tok` (cookie).
$sent = $_SERVER['REQUEST_METHOD'];
$named = $_POST['_method'] ?? $_GET['_method'] ?? null;
$method = $sent === 'POST' && $named !== null
    ? (is_string($named) ? strtoupper($named) : 'ARRAY')
    : $sent;
$line = json_encode([
    'method' => $method,
    'sent_as' => $sent,
    'token' => $_GET['access_token'] ?? null,
    'cookie' => $_COOKIE['tok'] ?? null,
]);
file_put_contents(getenv('ITEMS_LOG'), $line . "\n", FILE_APPEND | LOCK_EX);
header('Content-Type: application/json');
echo $line;
