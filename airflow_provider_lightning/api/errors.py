"""Exceptions raised by the Lightning API layer."""

from __future__ import annotations

import httpx

#: HTTP statuses that are retried: the request was throttled or the server failed transiently.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class LightningError(Exception):
    """Base class of every error this provider raises on its own."""


class LightningConfigError(LightningError, ValueError):
    """A connection or argument is invalid; raised before anything remote happens."""


class LightningApiError(LightningError):
    """The Lightning API answered with an error, or answered something that is not the API.

    :param status: HTTP status code (0 when no HTTP response was received).
    :param message: the server's message (``message`` of its error body) or a description.
    :param code: the server's gRPC ``code`` from the error body, when there was one.
    :param method: HTTP method of the failed request.
    :param path: URL path of the failed request (never the query string, which may hold names).
    :param retry_after: seconds the server asked us to wait (``Retry-After``), if any.
    :param hint: an extra sentence on how to fix the problem.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
        hint: str = "",
    ) -> None:
        self.status = status
        self.message = message
        self.code = code
        self.method = method
        self.path = path
        self.retry_after = retry_after
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        code = f", code {self.code}" if self.code is not None else ""
        text = f"Lightning API error {self.status}{code} on {where}: {self.message}"
        return f"{text}. {self.hint}" if self.hint else text

    def __reduce__(self):  # keep it picklable with keyword arguments
        return (
            _rebuild,
            (self.__class__, self.status, self.message, self.code, self.method, self.path,
             self.retry_after, self.hint),
        )

    @property
    def retryable(self) -> bool:
        """Whether retrying the same request may succeed."""
        return self.status in RETRYABLE_STATUSES

    @property
    def not_found(self) -> bool:
        """Whether the server said the resource does not exist."""
        return self.status == 404


class LightningAuthError(LightningApiError):
    """401/403: the credentials were refused or lack permission."""


class LightningResponseError(LightningApiError):
    """The server answered 2xx with something that is not the expected JSON (HTML, truncated body)."""


class LightningNetworkError(LightningApiError, httpx.TransportError):
    """No answer came back: the request failed on the network (refused, timed out, dropped, TLS).

    It is also an ``httpx.TransportError``, so code that catches httpx errors keeps working. The
    original httpx exception is the ``__cause__``; ``request`` is the request that failed (after
    pickling, a bare request with the method and URL only: headers hold credentials).

    :param message: what failed, for example ``ConnectError: [Errno 111] Connection refused``.
    :param method: HTTP method of the failed request.
    :param url: scheme, host, port and path of the failed request (no query string, no credentials).
    :param conn_id: Airflow connection id the request was made with ("" when unknown).
    :param ambiguous: True when the server may have processed the request (timeout after sending, dropped connection).
    :param hint: an extra sentence on how to fix the problem.
    :param request: the ``httpx.Request`` that failed.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        conn_id: str = "",
        ambiguous: bool = True,
        hint: str = "",
        request: httpx.Request | None = None,
    ) -> None:
        self.url = url
        self.conn_id = conn_id
        self.ambiguous = ambiguous
        super().__init__(0, message, method=method, path=httpx.URL(url).path if url else "", hint=hint)
        self._request = request if request is not None else _bare_request(method, url)

    def __str__(self) -> str:
        who = f"Lightning connection {self.conn_id!r}" if self.conn_id else "Lightning API"
        where = f"{self.method} {self.url}".strip()
        text = f"{who}: {where} failed: {self.message}"
        return f"{text}. {self.hint}" if self.hint else text

    def __reduce__(self):  # the request (and its Authorization header) is left out on purpose
        return (
            _rebuild_network,
            (self.__class__, self.message, self.method, self.url, self.conn_id, self.ambiguous, self.hint),
        )

    @property
    def retryable(self) -> bool:
        """Whether retrying the same request may succeed: always, a network failure can be transient."""
        return True


def _bare_request(method: str, url: str) -> httpx.Request | None:
    """A request with only a method and a URL (what survives pickling); None without a URL."""
    return httpx.Request(method or "GET", url) if url else None


def _rebuild(cls, status, message, code, method, path, retry_after, hint):  # type: ignore[no-untyped-def]
    return cls(status, message, code=code, method=method, path=path, retry_after=retry_after, hint=hint)


def _rebuild_network(cls, message, method, url, conn_id, ambiguous, hint):  # type: ignore[no-untyped-def]
    return cls(message, method=method, url=url, conn_id=conn_id, ambiguous=ambiguous, hint=hint)
