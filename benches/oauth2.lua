-- wrk script for standard OAuth 2.0 issuance over HTTP (BENCHMARKS.md,
-- "Token issuance"): the client_credentials grant for the demo's
-- client-flat client, authenticated with HTTP Basic, beside benches/issue.lua
-- (the same client at the legacy endpoint); "Non-2xx" counts the failures.
--   wrk -t1 -c50 -d10s -s benches/oauth2.lua http://127.0.0.1:8080/oauth2/client-flat/token
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
-- base64("demo_client_123:demo_secret_456_ABCDEFGH")
wrk.headers["Authorization"] = "Basic ZGVtb19jbGllbnRfMTIzOmRlbW9fc2VjcmV0XzQ1Nl9BQkNERUZHSA=="
wrk.body = "grant_type=client_credentials"
