"""Loopback TCP servers that do not speak HTTP properly: for network-failure tests."""

from __future__ import annotations

import socket
import threading


class RawServer:
    """Accept connections on 127.0.0.1; answer each with ``reply`` bytes and close it, or (None) never answer.

    :param reply: bytes sent once the request arrived, then the connection is closed; None keeps every
        connection open and silent (a hung host).
    """

    def __init__(self, reply: bytes | None = None) -> None:
        self.reply = reply
        self.accepted = 0
        self._open: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stopped = threading.Event()
        self.port = self._listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept_forever, daemon=True)

    def _accept_forever(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            if self.reply is None:
                self._open.append(conn)
            else:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            conn.recv(65536)
            conn.sendall(self.reply or b"")

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for conn in self._open:
            conn.close()


def hung_host() -> RawServer:
    """A host that accepts connections and never answers."""
    return RawServer(None)
