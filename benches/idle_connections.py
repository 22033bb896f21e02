"""Connections that stay open and quiet (benches/callgrind.sh, IDLE=1):
CONNECTIONS kept-alive connections to http://127.0.0.1:18085, each
sending one GET / with TOKEN and reading its answer, then holding the
connection open, silent, until SIGTERM. What the gateway does meanwhile
is what time alone costs it: timers, the connections' watchdogs.

    python3 benches/idle_connections.py CONNECTIONS TOKEN
"""
import signal
import socket
import sys

connections, token = int(sys.argv[1]), sys.argv[2]
held = []
for _ in range(connections):
    c = socket.create_connection(("127.0.0.1", 18085))
    c.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:18085\r\n"
              f"Authorization: Bearer {token}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += c.recv(65536)
    if not answer.startswith(b"HTTP/1.1 2"):
        sys.exit(f"answered {answer.splitlines()[0]!r}")
    held.append(c)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    signal.pause()
