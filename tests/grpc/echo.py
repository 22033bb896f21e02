"""A real gRPC service and client (grpcio) for tests/grpc.rs.

    echo.py serve              serves portero.test.Echo on 127.0.0.1, prints its port
    echo.py call TARGET METHOD TOKEN PAYLOAD
                               calls METHOD through TARGET ("-" for no token) and
                               prints the outcome as one JSON line

Messages are raw bytes (no protobuf), so no generated code is needed.
"""
import json
import sys
import time
from concurrent import futures

import grpc


def unary(request, context):
    sub = dict(context.invocation_metadata()).get("x-portero-sub", "")
    context.set_trailing_metadata((("x-upstream-saw-sub", sub),))
    return b"unary:" + request


def stream(request, context):
    for i in range(3):
        yield b"%d:" % i + request
    context.set_trailing_metadata((("x-stream-end", "done"),))


class Echo(grpc.GenericRpcHandler):
    def service(self, details):
        if details.method == "/portero.test.Echo/Unary":
            return grpc.unary_unary_rpc_method_handler(unary)
        if details.method == "/portero.test.Echo/Stream":
            return grpc.unary_stream_rpc_method_handler(stream)
        return None


def serve():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((Echo(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    while True:
        time.sleep(3600)


def call(target, method, token, payload):
    metadata = [] if token == "-" else [("authorization", "Bearer " + token)]
    out = {"messages": []}
    with grpc.insecure_channel(target) as channel:
        try:
            if method.endswith("/Stream"):
                call = channel.unary_stream(method)(payload.encode(), metadata=metadata, timeout=10)
                for message in call:
                    out["messages"].append(message.decode())
                trailing = call.trailing_metadata()
            else:
                reply, call = channel.unary_unary(method).with_call(
                    payload.encode(), metadata=metadata, timeout=10
                )
                out["messages"].append(reply.decode())
                trailing = call.trailing_metadata()
            out["code"] = "OK"
        except grpc.RpcError as e:
            out["code"] = e.code().name
            out["details"] = e.details()
            trailing = e.trailing_metadata()
    out["trailing"] = {k: v for k, v in (trailing or ())}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        call(*sys.argv[2:6])
