"""A TLS load with a client certificate (benches/callgrind.sh, MTLS=DIR):
GET / on https://127.0.0.1:18085 over one kept-alive connection, for
SECONDS, with the bearer TOKEN and DIR's client.pem and client.key (its
roots: DIR/ca.pem). Prints wrk's summary line, and a Non-2xx line if any
answer was not 2xx.

    python3 benches/mtls_load.py SECONDS DIR TOKEN
"""
import http.client
import ssl
import sys
import time

seconds, directory, token = float(sys.argv[1]), sys.argv[2], sys.argv[3]
context = ssl.create_default_context(cafile=f"{directory}/ca.pem")
context.load_cert_chain(f"{directory}/client.pem", f"{directory}/client.key")
connection = http.client.HTTPSConnection("127.0.0.1", 18085, context=context)
headers = {"Authorization": f"Bearer {token}"}
start, done, refused = time.monotonic(), 0, 0
while time.monotonic() - start < seconds:
    connection.request("GET", "/", headers=headers)
    response = connection.getresponse()
    response.read()
    done += 1
    refused += response.status >= 400
print(f"  {done} requests in {time.monotonic() - start:.2f}s")
if refused:
    print(f"  Non-2xx or Socket errors: {refused}")
