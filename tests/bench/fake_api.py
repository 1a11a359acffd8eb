"""A fake HTTP/1.1 JSON API for the benchmarks: answers every request after a fixed delay.

Stands in for a provider (``hub.call``) and for a webhook subscriber (deliveries): it
reads the request line, headers and body, waits ``--delay`` seconds without holding
a thread (asyncio), and answers ``200`` with a small JSON body (``204`` for paths
under ``/hooks``). Keep-alive is honoured, and each answer is written in one
``write`` with TCP_NODELAY set, so no Nagle/delayed-ACK stall (~40 ms) is measured
(the stock ``ThreadingHTTPServer`` writes headers and body separately). With
``--api-key`` a request without that ``X-Api-Key`` gets ``401`` (the rest
adapter's api_key auth is on the measured path).

Runs as its own process so its CPU is not counted against the client's:

    python tests/bench/fake_api.py --port 0 --delay 0.2   # prints "listening <port>"

Counts the requests it answered; ``GET /_count`` returns ``{"answered": N}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys

BODY = json.dumps({"id": "obj_1", "status": "ok", "items": list(range(20))}).encode()


class _State:
    answered = 0


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float,
                 api_key: str | None) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in
                       (line.split(":", 1) for line in lines[1:] if ":" in line)}
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            if path == "/_count":
                await _answer(writer, 200, json.dumps({"answered": _State.answered}).encode())
                continue
            if delay:
                await asyncio.sleep(delay)
            _State.answered += 1
            if api_key is not None and headers.get("x-api-key") != api_key:
                await _answer(writer, 401, b'{"error":"unauthorized"}')
            elif path.startswith("/hooks"):
                await _answer(writer, 204, b"")
            else:
                await _answer(writer, 200, BODY)
            if headers.get("connection", "").lower() == "close":
                break
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def _answer(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    reason = {200: "OK", 204: "No Content", 401: "Unauthorized"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n" if status != 204 else "\r\n"
    writer.write(head.encode() + body)
    await writer.drain()


async def _main(port: int, delay: float, api_key: str | None) -> None:
    server = await asyncio.start_server(lambda r, w: _serve(r, w, delay, api_key),
                                        "127.0.0.1", port, backlog=1024)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--api-key")
    args = parser.parse_args()
    try:
        asyncio.run(_main(args.port, args.delay, args.api_key))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
