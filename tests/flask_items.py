"""An application of items on Flask (werkzeug's server), the upstream of
tests/methods.rs. It honours X-HTTP-Method-Override with the middleware
Flask's documentation gives (patterns/methodoverrides), and werkzeug reads
a request line's method in any case (`delete` is DELETE). Prints its port
on the first line, then one line per request it runs: METHOD PATH, and
`(sent as M)` when the request line said otherwise.

Usage: python3 tests/flask_items.py
"""

import logging

from flask import Flask, request
from werkzeug.serving import make_server


class HTTPMethodOverrideMiddleware(object):
    """As Flask's documentation writes it."""

    allowed_methods = frozenset(["GET", "HEAD", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"])
    bodyless_methods = frozenset(["GET", "HEAD", "OPTIONS", "DELETE"])

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        method = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").upper()
        if method in self.allowed_methods:
            environ["REQUEST_METHOD"] = method
        if method in self.bodyless_methods:
            environ["CONTENT_LENGTH"] = "0"
        return self.app(environ, start_response)


def remember_sent_method(wsgi_app):
    """Keeps the request line's method for the log line, before the override."""

    def remembering(environ, start_response):
        environ["items.sent_as"] = environ["REQUEST_METHOD"]
        return wsgi_app(environ, start_response)

    return remembering


app = Flask(__name__)
app.wsgi_app = remember_sent_method(HTTPMethodOverrideMiddleware(app.wsgi_app))


@app.route("/items/<item>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def item(item):
    sent = request.environ["items.sent_as"]
    note = "" if sent == request.method else f" (sent as {sent})"
    print(f"{request.method} {request.path}{note}", flush=True)
    return {"method": request.method, "item": item}


logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = make_server("127.0.0.1", 0, app)
print(server.port, flush=True)
server.serve_forever()
