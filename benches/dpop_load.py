"""A DPoP load (benches/callgrind.sh, DPOP=1): GET / on
http://127.0.0.1:18085 over CONNECTIONS kept-alive connections, each
request with the bound token and the next proof of benches/dpop_proofs.py
(OUT.token, OUT.proofs), until SIGTERM; then prints wrk's summary line,
and a Non-2xx line if any answer was not 2xx. SIGUSR1 starts the count
again: the connections, opened before it, stay open across it, as a
kept-alive client's do, so that a count of ~1,500 requests (ES256 under
valgrind) carries no connection's opening and closing.

    python3 benches/dpop_load.py OUT CONNECTIONS
"""
import signal
import socket
import sys
import threading
import time

base, connections = sys.argv[1], int(sys.argv[2])
token = open(f"{base}.token").read().strip()
proofs = open(f"{base}.proofs").read().split()
lock = threading.Lock()
state = {"next": 0, "done": 0, "refused": 0, "start": time.monotonic()}


def next_proof():
    with lock:
        if state["next"] == len(proofs):
            return None
        state["next"] += 1
        return proofs[state["next"] - 1]


def more(connection):
    data = connection.recv(65536)
    if not data:
        raise ConnectionError("the gateway closed the connection")
    return data


def answer(connection, buffered):
    """The status of the next answer on `connection`, and what was read past it."""
    while b"\r\n\r\n" not in buffered:
        buffered += more(connection)
    head, rest = buffered.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(v) for n, _, v in (l.partition(":") for l in lines[1:])
                  if n.strip().lower() == "content-length")
    while len(rest) < length:
        rest += more(connection)
    return int(lines[0].split()[1]), rest[length:]


def send():
    # The request as wrk sends it (benches/dpop.lua): the same bytes to parse.
    connection = socket.create_connection(("127.0.0.1", 18085))
    buffered = b""
    while (proof := next_proof()) is not None:
        connection.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:18085\r\n"
                           f"Authorization: DPoP {token}\r\nDPoP: {proof}\r\n\r\n".encode())
        status, buffered = answer(connection, buffered)
        with lock:
            state["done"] += 1
            state["refused"] += status >= 400
    print("out of proofs: make more (DPOP_RATE)", file=sys.stderr)


def count_again(*_):
    with lock:
        state.update(done=0, refused=0, start=time.monotonic())


def report(*_):
    with lock:
        print(f"  {state['done']} requests in {time.monotonic() - state['start']:.2f}s")
        if state["refused"]:
            print(f"  Non-2xx or Socket errors: {state['refused']}")
    sys.stdout.flush()
    sys.exit(0)


signal.signal(signal.SIGUSR1, count_again)
signal.signal(signal.SIGTERM, report)
for _ in range(connections):
    threading.Thread(target=send, daemon=True).start()
while True:
    signal.pause()
