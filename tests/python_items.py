"""An application of items on Python's own parsers, an upstream of
tests/parsers.rs: `http.cookies.SimpleCookie` for cookies (as Bottle,
CherryPy and aiohttp read them) and `urllib.parse.parse_qs` for the query,
on the standard library's HTTP server. A POST's `_method` names the method
it runs. Prints its port on the first line, then one JSON line per request:
the method it ran, the one sent, and what it read as `access_token`
(query) and `tok` (cookie).

Usage: python3 tests/python_items.py
"""

import json
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Items(BaseHTTPRequestHandler):
    def handle_one(self):
        query = parse_qs(urlsplit(self.path).query)
        cookies = SimpleCookie()
        # As WSGI servers do, several Cookie headers are read as one.
        cookies.load(", ".join(self.headers.get_all("Cookie") or []))
        sent = self.command
        named = query.get("_method", [None])[-1]
        line = json.dumps({
            "method": named.upper() if sent == "POST" and named else sent,
            "sent_as": sent,
            "token": query.get("access_token", [None])[-1],
            "cookie": cookies["tok"].value if "tok" in cookies else None,
        })
        print(line, flush=True)
        body = line.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = handle_one

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Items)
print(server.server_address[1], flush=True)
server.serve_forever()
