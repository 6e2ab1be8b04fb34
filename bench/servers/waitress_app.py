"""Python waitress (Debian python3-waitress) serving the benchmark app's routes and bytes.

    /usr/bin/python3 bench/servers/waitress_app.py --port=8080 [--connection-limit=N] [--poll]

Defaults are waitress's own (4 threads, connection_limit 100, select()).
--connection-limit and --poll exist for the idle-connection scenario: select()
cannot watch more than 1024 descriptors.
"""
import json
import sys
from urllib.parse import urlsplit

import waitress

CHUNK_SIZE = 64 * 1024
STREAM_CHUNKS = 1600
HELLO = b"Hello world\n"
BODY_64K = b"a" * CHUNK_SIZE
CHUNK = b"b" * CHUNK_SIZE


def stream():
    for _ in range(STREAM_CHUNKS):
        yield CHUNK


def route(environ):
    # The same small router as app.ts: parse the URL, look up a route table, JSON out.
    url = urlsplit(environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/"))
    handler = ROUTES.get((environ["REQUEST_METHOD"], url.path))
    if handler is None:
        return "404 Not Found", {"error": "not found"}
    return "200 OK", handler(environ)


ROUTES = {
    ("GET", "/json"): lambda environ: {
        "message": "Hello, World!",
        "agent": environ.get("HTTP_USER_AGENT", ""),
        "items": [1, 2, 3],
    },
}


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/plain;charset=UTF-8"),
                                  ("Content-Length", "12")])
        return [HELLO]
    if path == "/64k":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(CHUNK_SIZE))])
        return [BODY_64K]
    if path == "/stream100m":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return stream()
    if path == "/upload":
        body = environ["wsgi.input"]
        count = 0
        while True:
            chunk = body.read(CHUNK_SIZE)
            if not chunk:
                break
            count += len(chunk)
        data = str(count).encode()
        start_response("200 OK", [("Content-Type", "text/plain;charset=UTF-8"),
                                  ("Content-Length", str(len(data)))])
        return [data]
    status, value = route(environ)
    data = json.dumps(value, separators=(",", ":")).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data)))])
    return [data]


def main():
    options = {"host": "127.0.0.1", "port": 8080}
    for arg in sys.argv[1:]:
        if arg.startswith("--port="):
            options["port"] = int(arg[7:])
        elif arg.startswith("--host="):
            options["host"] = arg[7:]
        elif arg.startswith("--connection-limit="):
            options["connection_limit"] = int(arg[19:])
        elif arg == "--poll":
            options["asyncore_use_poll"] = True
    print(f"waitress {waitress.__name__} listening on {options['host']}:{options['port']}",
          flush=True)
    waitress.serve(app, **options)


if __name__ == "__main__":
    main()
