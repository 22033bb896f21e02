"""An MCP server on the PyPI `mcp` package (its MCPServer, once FastMCP),
the upstream of tests/sign_in_clients.rs: the streamable HTTP transport at
/mcp with one tool, add(a, b). It checks no token: portero in front of it
does, and tells it who called in X-User-Sub. Prints its port on the first
line, then one line per request: METHOD PATH sub=<X-User-Sub>, so the test
sees that what reached it came through portero for the signed-in user.

Usage: python3 tests/mcp_server.py [PORT]   (no PORT: any free port)
"""

import asyncio
import logging
import socket
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("adder")


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


# The default transport security stays on (it answers only to a Host of
# 127.0.0.1:*, which portero forwards as it got it from its client).
mcp_app = server.streamable_http_app(streamable_http_path="/mcp")


async def app(scope, receive, send):
    """Logs each HTTP request with the subject portero injected."""
    if scope["type"] == "http":
        headers = dict(scope["headers"])
        sub = headers.get(b"x-user-sub", b"-").decode("latin-1")
        print(f"{scope['method']} {scope['path']} sub={sub}", flush=True)
    await mcp_app(scope, receive, send)


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    # Bound here so that port 0 becomes a known port before uvicorn starts.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    print(sock.getsockname()[1], flush=True)
    await uvicorn.Server(config).serve(sockets=[sock])


logging.getLogger("mcp").setLevel(logging.WARNING)
asyncio.run(main())
