"""Slow clients ("slowloris"): connections that send a byte a second and never finish.

Used by the slow-client test and by tests/bench/bench_slow_clients.py. Traffic goes
only to the loopback server given.
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit


class SlowClients:
    """``n`` connections to ``base`` sending a byte a second: half stuck in their
    headers (a GET /health), half in the body of a POST to ``path`` that announced
    1,000 bytes. With ``reconnect``, one the server closes is replaced at once, as an
    attacker would, so ``n`` stay open; ``closed_by_server`` counts them."""

    def __init__(self, base: str, path: str, n: int, *, reconnect: bool = False) -> None:
        address = urlsplit(base)
        self._address = (address.hostname or "127.0.0.1", address.port or 80)
        self._path = path
        self._reconnect = reconnect
        self.closed_by_server = 0
        self.socks: list[tuple[socket.socket, bool]] = [self._open(i % 2 == 1)
                                                        for i in range(n)]
        self._stop = threading.Event()
        self._trickle = threading.Thread(target=self._run, daemon=True)
        self._trickle.start()

    def _open(self, in_body: bool) -> tuple[socket.socket, bool]:
        sock = socket.create_connection(self._address, timeout=5)
        if in_body:
            sock.sendall(f"POST {self._path} HTTP/1.1\r\nHost: hub\r\nContent-Type: "
                         "application/json\r\nContent-Length: 1000\r\n\r\n{".encode())
        else:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: hub\r\nX-Slow: ")
        return sock, in_body

    @property
    def open(self) -> int:
        """Connections open now."""
        return len(self.socks)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for entry in list(self.socks):
                sock, in_body = entry
                try:
                    sock.sendall(b"a")
                except OSError:  # the server closed it: that is its right
                    self.closed_by_server += 1
                    self.socks.remove(entry)
                    sock.close()
                    if self._reconnect and not self._stop.is_set():
                        self.socks.append(self._open(in_body))

    def close(self) -> None:
        """Stop trickling and close every connection."""
        self._stop.set()
        self._trickle.join(timeout=5)
        for sock, _ in self.socks:
            sock.close()
