"""What a deployment replica's process needs from the network: a free port, readiness probes and a reverse proxy.

A replica that runs its command listens on ``PORT`` (a free ``127.0.0.1`` port picked by :func:`free_port`);
it is ready once :func:`accepts_connections` and, with an HTTP health check, :func:`http_probe` say so, and the
served endpoint forwards requests to it with :func:`proxy`.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

PROXY_TIMEOUT = 300.0  # seconds a proxied request may wait for the replica's answer

# RFC 9110 section 7.6.1: meaningful for one connection only, never forwarded by a proxy.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by whoever sends the message (the HTTP client or the simulator's own server), not copied.
_FRAMING = frozenset({"host", "content-length", "expect"})
_RESPONSE_OWN = frozenset({"content-length", "content-type", "date", "server"})


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (bound, read and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def accepts_connections(port: int, timeout: float = 0.5, host: str = "127.0.0.1") -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_probe(
    port: int, path: str, method: str = "GET", body: str = "", timeout: float = 2.0, host: str = "127.0.0.1"
) -> int | None:
    """The status of one health-check request to ``http://host:port/path`` (``None`` when it got no answer)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method or "GET", path if path.startswith("/") else "/" + path, body=body.encode() or None)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _connection_tokens(headers: Mapping[str, str]) -> set[str]:
    """Header names listed in ``Connection`` (hop-by-hop for this message only)."""
    value = next((v for k, v in headers.items() if k.lower() == "connection"), "")
    return {token.strip().lower() for token in value.split(",") if token.strip()}


def request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a request as forwarded upstream: hop-by-hop, ``Host``, ``Content-Length`` and ``Expect`` (the
    body was read already) removed."""
    drop = HOP_BY_HOP | _FRAMING | _connection_tokens(headers)
    return {k: v for k, v in headers.items() if k.lower() not in drop}


@dataclass
class Upstream:
    """An upstream answer, returned to the caller as it is."""

    status: int
    body: bytes
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # end-to-end headers besides Content-Type


class ProxyError(Exception):
    """The upstream could not be reached or did not answer (``status``: 502, or 504 on a timeout)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def proxy(
    port: int,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    timeout: float,
    host: str = "127.0.0.1",
) -> Upstream:
    """Send one request to ``http://host:port{target}`` and read the whole answer.

    :param port: the upstream port.
    :param method: the HTTP method.
    :param target: the path and query (``/predict?x=1``).
    :param headers: the headers to send (already filtered, see :func:`request_headers`).
    :param body: the request body (sent with a ``Content-Length``; none for an empty GET, HEAD or DELETE).
    :param timeout: seconds to wait for the connection and for each read.
    """
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        send_body = body if body or method.upper() not in ("GET", "HEAD", "DELETE", "OPTIONS") else None
        try:
            conn.request(method, target, body=send_body, headers=dict(headers))
            response = conn.getresponse()
            payload = response.read()
        except TimeoutError as exc:
            raise ProxyError(504, f"the upstream did not answer within {timeout:g} s ({exc})") from None
        except (OSError, http.client.HTTPException) as exc:
            raise ProxyError(502, f"{type(exc).__name__}: {exc}") from None
        answer = response.getheaders()
    finally:
        with contextlib.suppress(OSError):
            conn.close()
    drop = HOP_BY_HOP | _RESPONSE_OWN | _connection_tokens(dict(answer))
    content_type = next((v for k, v in answer if k.lower() == "content-type"), "")
    kept: dict[str, str] = {}
    for key, value in answer:
        if key.lower() not in drop:
            kept[key] = f"{kept[key]}, {value}" if key in kept and key.lower() != "set-cookie" else value
    return Upstream(response.status, payload, content_type, kept)


def exit_text(code: int) -> str:
    """``exited with code 3``, or ``was killed by signal 9 (exit code 137)`` for a negative return code."""
    return f"exited with code {code}" if code >= 0 else f"was killed by signal {-code} (exit code {128 - code})"
