"""One HTTP transport for the Lightning API, driven synchronously or asynchronously.

Everything that decides *what* to send and *how to read the answer* is written once:

* an :class:`ApiCall` describes one request (method, path, query, body, how to parse the answer);
* a *flow* is a generator that yields ``ApiCall`` objects and receives their results (or has their
  errors thrown into it), so a multi-step operation (teamspace resolution, create-or-find) is
  also written once; it may also yield a :class:`Pause` to wait between steps;
* :meth:`Transport.run` and :meth:`Transport.arun` are the only sync/async pair: they drive a call
  or a flow through an ``httpx.Client`` or ``httpx.AsyncClient`` with the same tenacity policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import tenacity

from airflow_provider_lightning.api.errors import (
    LightningApiError,
    LightningAuthError,
    LightningNetworkError,
    LightningResponseError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Network failures after which the request may or may not have been processed by the server.
AMBIGUOUS_ERRORS: tuple[type[Exception], ...] = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)
# Network failures that guarantee the server never saw the request.
UNSENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# A retry is not started with less than this many seconds left of the call's ``call_timeout``.
MIN_ATTEMPT_SECONDS = 1.0
# What an OpenSSL client says when the server answers the TLS handshake in plain HTTP.
_NOT_TLS_MARKERS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL")
# What a TLS server (nginx, Go) answers, in plain HTTP, to a plain-HTTP request on its TLS port.
_TLS_ONLY_MARKERS = ("plain HTTP request was sent to HTTPS port", "HTTP request to an HTTPS server")


@dataclass(frozen=True)
class ApiCall(Generic[T]):
    """One Lightning API request and how to read its answer.

    :param method: HTTP method.
    :param path: absolute API path starting with ``/v1/``; path parameters already quoted.
    :param params: query parameters; a list value is sent as repeated keys (``jobIds=a&jobIds=b``).
    :param json: request body; POST, PUT and DELETE always send one (``{}`` when None), as the SDK does.
    :param parse: turns the decoded JSON into the result; identity when None.
    :param idempotent: False for calls that create something: they are only retried when the
        request certainly did not reach the server (connection refused, 429).
    :param none_if_missing: return None instead of raising on 404.
    :param timeout: total seconds for this call, retries included; None uses the policy's ``call_timeout``.
    """

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    parse: Callable[[Any], T] | None = None
    idempotent: bool = True
    none_if_missing: bool = False
    timeout: float | None = None


@dataclass(frozen=True)
class Pause:
    """A flow step that waits, without blocking the event loop under :meth:`Transport.arun`; sends back None.

    :param seconds: how long to wait.
    """

    seconds: float


#: A multi-step operation: a generator that yields :class:`ApiCall` (or :class:`Pause`) steps, is sent each
#: call's result (or has its error thrown into it) and returns its own result.
Flow = Generator[ApiCall[Any] | Pause, Any, T]
#: What :meth:`Transport.run` and :meth:`Transport.arun` drive: one :class:`ApiCall` or a :data:`Flow`.
Operation = ApiCall[T] | Flow[T]


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    :param max_attempts: total attempts per request, first one included.
    :param backoff_initial: first backoff in seconds; doubles on each failure, with full jitter.
    :param backoff_max: cap of the exponential backoff in seconds.
    :param retry_after_max: cap in seconds on a server's ``Retry-After``.
    :param call_timeout: total seconds per API call, retries and pauses included; each attempt's
        timeouts are cut to the time left, and no pause goes past it.
    """

    max_attempts: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    call_timeout: float = 60.0


@dataclass
class TransportStats:
    """Counters a transport keeps (used by benchmarks and the chaos run)."""

    requests: int = 0
    retries: int = 0
    retry_after_honoured: int = 0
    by_path: dict[str, int] = field(default_factory=dict)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header: delta seconds or an HTTP date. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _snippet(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def decode_response(call: ApiCall[Any], response: httpx.Response, auth_hint: str = "") -> Any:
    """Map an HTTP response to the call's result, or raise the matching :class:`LightningApiError`."""
    method, path = call.method, httpx.URL(call.path).path
    status = response.status_code
    text = response.content.decode("utf-8", errors="replace")
    body: Any = None
    body_ok = False
    if text.strip():
        try:
            body = json.loads(text)
            body_ok = True
        except ValueError:
            body_ok = False
    else:
        body, body_ok = {}, True

    if 200 <= status < 300:
        if not body_ok:
            ctype = response.headers.get("content-type", "unknown content type")
            raise LightningResponseError(
                status,
                f"expected a JSON answer but got {ctype} that does not parse as JSON: {_snippet(text)!r}. "
                "Is the connection's host the Lightning API (for example https://lightning.ai)?",
                method=method,
                path=path,
            )
        if call.parse is None:
            return body
        try:
            return call.parse(body)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise LightningResponseError(
                status, f"unexpected answer shape ({err}): {_snippet(text)!r}", method=method, path=path
            ) from err

    if status == 404 and call.none_if_missing:
        return None
    code: int | None = None
    if body_ok and isinstance(body, dict):
        raw_code = body.get("code")
        code = raw_code if isinstance(raw_code, int) else None
        message = str(body.get("message") or body.get("error") or response.reason_phrase or "")
    else:
        message = f"{response.reason_phrase or 'error'}: {_snippet(text)!r}" if text.strip() else (
            response.reason_phrase or "no body"
        )
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    error_cls = LightningAuthError if status in (401, 403) else LightningApiError
    hint = auth_hint if status in (401, 403) else _tls_only_hint(response, text)
    raise error_cls(
        status, message, code=code, method=method, path=path, retry_after=retry_after, hint=hint
    )


class Transport:
    """Authenticated access to the Lightning API over one keep-alive HTTP client per mode.

    :param base_url: API host, for example ``https://lightning.ai``.
    :param headers: headers sent on every request (``Authorization`` included; never logged).
    :param conn_id: Airflow connection id, named in network errors ("" when there is none).
    :param timeout: httpx timeout (connect and read).
    :param retry: retry policy.
    :param verify: verify TLS certificates.
    :param auth_hint: sentence appended to 401/403 errors saying how to fix the credentials.
    :param http_transport: optional httpx transport for the sync client (tests, benchmarks).
    :param async_http_transport: optional httpx transport for the async client.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        conn_id: str = "",
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool = True,
        auth_hint: str = "",
        http_transport: httpx.BaseTransport | None = None,
        async_http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.conn_id = conn_id
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            **headers,
        }
        self.timeout = timeout or httpx.Timeout(30.0, connect=10.0)
        self.retry = retry or RetryPolicy()
        self.verify = verify
        self.auth_hint = auth_hint
        self.stats = TransportStats()
        self._http_transport = http_transport
        self._async_http_transport = async_http_transport
        self._client: httpx.Client | None = None
        self._storage_client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None

    def __repr__(self) -> str:  # never show headers
        return f"Transport({self.base_url!r})"

    # -- shared core ---------------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "headers": self._headers,
            "timeout": self.timeout,
            "verify": self.verify,
            "follow_redirects": False,
        }

    def build_request(
        self, client: httpx.Client | httpx.AsyncClient, call: ApiCall[Any], deadline: float | None = None
    ) -> httpx.Request:
        """Build the HTTP request of a call (same for both clients); ``deadline`` (monotonic) cuts its timeouts."""
        body = call.json
        if body is None and call.method in ("POST", "PUT", "DELETE", "PATCH"):
            body = {}
        params: list[tuple[str, str | int | float | bool | None]] | None = None
        if call.params:
            params = [
                (key, _query_value(item))
                for key, value in call.params.items()
                if value is not None
                for item in (value if isinstance(value, (list, tuple)) else [value])
            ]
        content = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        self.stats.requests += 1
        route = httpx.URL(call.path).path
        self.stats.by_path[route] = self.stats.by_path.get(route, 0) + 1
        timeout = self.timeout if deadline is None else _cut(self.timeout, deadline - time.monotonic())
        return client.build_request(call.method, call.path, params=params, content=content, timeout=timeout)

    def _should_retry(self, call: ApiCall[Any], error: BaseException) -> bool:
        if isinstance(error, LightningApiError):
            if error.status == 429:
                return True
            return call.idempotent and error.retryable
        if _speaks_no_tls(error):  # a wrong scheme does not heal
            return False
        if isinstance(error, UNSENT_ERRORS):
            return True
        return call.idempotent and isinstance(error, AMBIGUOUS_ERRORS)

    def _asked_pause(self, state: tenacity.RetryCallState) -> float | None:
        """The pause the server asked for after the failed attempt (``Retry-After``, capped); None when none."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, LightningApiError) and error.retry_after is not None:
            return min(error.retry_after, self.retry.retry_after_max)
        return None

    def _shortest_pause(self, state: tenacity.RetryCallState) -> float:
        """The least the next pause can be: the server's ``Retry-After``, else the smallest backoff."""
        asked = self._asked_pause(state)
        return self.retry.backoff_initial / 2 if asked is None else asked

    def _stop(self, deadline: float) -> Callable[[tenacity.RetryCallState], bool]:
        """Stop condition: no attempts left, or the pause plus a useful attempt no longer fit before ``deadline``."""

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self.retry.max_attempts:
                return True
            return time.monotonic() + self._shortest_pause(state) + MIN_ATTEMPT_SECONDS > deadline

        return stop

    def _pause(self, state: tenacity.RetryCallState) -> float:
        """The pause before the next attempt: the server's ``Retry-After``, else jittered exponential backoff."""
        asked = self._asked_pause(state)
        if asked is not None:
            self.stats.retry_after_honoured += 1
            return asked
        ceiling = min(self.retry.backoff_max, self.retry.backoff_initial * 2 ** (state.attempt_number - 1))
        return random.uniform(self.retry.backoff_initial / 2, ceiling)

    def _wait(self, deadline: float) -> Callable[[tenacity.RetryCallState], float]:
        """Wait strategy: the pause, cut so that a useful attempt still fits before ``deadline``."""

        def wait(state: tenacity.RetryCallState) -> float:
            return max(0.0, min(self._pause(state), deadline - time.monotonic() - MIN_ATTEMPT_SECONDS))

        return wait

    def _before_sleep(self, call: ApiCall[Any]) -> Callable[[tenacity.RetryCallState], None]:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            self.stats.retries += 1
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "Lightning API %s %s failed (attempt %d of %d): %s; retrying in %.1f s",
                call.method, httpx.URL(call.path).path, state.attempt_number, self.retry.max_attempts,
                _describe(error), wait,
            )

        return before_sleep

    def _retry_kwargs(self, call: ApiCall[Any], deadline: float) -> dict[str, Any]:
        return {
            "stop": self._stop(deadline),
            "wait": self._wait(deadline),
            "retry": tenacity.retry_if_exception(lambda err: self._should_retry(call, err)),
            "before_sleep": self._before_sleep(call),
            "reraise": True,
        }

    def _deadline(self, call: ApiCall[Any]) -> float:
        """When (``time.monotonic``) the call must be done, retries included."""
        return time.monotonic() + (self.retry.call_timeout if call.timeout is None else call.timeout)

    # -- drivers: the only sync/async pair -----------------------------------------------------

    def sync_client(self) -> httpx.Client:
        """The keep-alive sync client (API host, credentials); byte transfers on the API host use it too."""
        if self._client is None:
            self._client = httpx.Client(transport=self._http_transport, **self._client_kwargs())
        return self._client

    def storage_client(self) -> httpx.Client:
        """A sync client for presigned storage URLs: no base URL and **no credentials** (a presigned URL carries
        its own signature; the API token must never reach the storage host)."""
        if self._storage_client is None:
            self._storage_client = httpx.Client(
                transport=self._http_transport, timeout=self.timeout, verify=self.verify, follow_redirects=False
            )
        return self._storage_client

    def _send(self, call: ApiCall[T]) -> T:
        client = self.sync_client()
        deadline = self._deadline(call)
        for attempt in tenacity.Retrying(**self._retry_kwargs(call, deadline)):
            with attempt:
                response = client.send(self.build_request(client, call, deadline))
                return decode_response(call, response, self.auth_hint)  # type: ignore[no-any-return]
        raise AssertionError("unreachable")  # pragma: no cover

    async def _asend(self, call: ApiCall[T]) -> T:
        if self._aclient is None:
            self._aclient = httpx.AsyncClient(transport=self._async_http_transport, **self._client_kwargs())
        client = self._aclient
        deadline = self._deadline(call)
        async for attempt in tenacity.AsyncRetrying(**self._retry_kwargs(call, deadline)):
            with attempt:
                response = await client.send(self.build_request(client, call, deadline))
                return decode_response(call, response, self.auth_hint)  # type: ignore[no-any-return]
        raise AssertionError("unreachable")  # pragma: no cover

    def run(self, operation: Operation[T]) -> T:
        """Run a call or a flow synchronously and return its result.

        A network failure that leaves it is a
        :class:`~airflow_provider_lightning.api.errors.LightningNetworkError`; a flow itself is thrown the raw
        httpx error, so that it can tell an ambiguous failure from an unsent request.
        """
        with self._named_network_errors():
            if isinstance(operation, ApiCall):
                return self._send(operation)
            flow = operation
            try:
                call = next(flow)
                while True:
                    if isinstance(call, Pause):
                        time.sleep(call.seconds)
                        call = flow.send(None)
                        continue
                    try:
                        result = self._send(call)
                    except Exception as error:  # the flow decides what an error means
                        call = flow.throw(error)
                    else:
                        call = flow.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]

    async def arun(self, operation: Operation[T]) -> T:
        """Run a call or a flow on the event loop and return its result (errors as in :meth:`run`)."""
        with self._named_network_errors():
            if isinstance(operation, ApiCall):
                return await self._asend(operation)
            flow = operation
            try:
                call = next(flow)
                while True:
                    if isinstance(call, Pause):
                        await asyncio.sleep(call.seconds)
                        call = flow.send(None)
                        continue
                    try:
                        result = await self._asend(call)
                    except Exception as error:
                        call = flow.throw(error)
                    else:
                        call = flow.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def _named_network_errors(self) -> Iterator[None]:
        """Re-raise an httpx request error leaving the block as a :class:`LightningNetworkError`."""
        try:
            yield
        except LightningNetworkError:
            raise
        except httpx.RequestError as error:
            raise self.network_error(error) from error

    def network_error(self, error: httpx.RequestError) -> LightningNetworkError:
        """The :class:`~airflow_provider_lightning.api.errors.LightningNetworkError` naming this connection, the method
        and the URL of ``error``."""
        request = _request_of(error)
        url = request.url if request is not None else httpx.URL(self.base_url)
        return LightningNetworkError(
            _describe(error),
            method=request.method if request is not None else "",
            url=_public_url(url),
            conn_id=self.conn_id,
            ambiguous=not isinstance(error, (*UNSENT_ERRORS, httpx.UnsupportedProtocol)),
            hint=self._network_hint(error, url),
            request=request,
        )

    def _network_hint(self, error: httpx.RequestError, url: httpx.URL) -> str:
        """A sentence on the likely cause of a network failure, or ""."""
        address = _address(url)
        if _speaks_no_tls(error):
            return (
                f"The server at {address} does not speak TLS: is the connection's host meant to be "
                f"{_origin(url, 'http')}?"
            )
        if isinstance(error, httpx.RemoteProtocolError) and url.scheme == "http" and "illegal" in str(error):
            return (
                f"The answer from {address} is not HTTP: if that server speaks TLS, the connection's host "
                f"should be {_origin(url, 'https')}"
            )
        if isinstance(error, httpx.ConnectTimeout):
            return (
                f"No connection to {address} within the connect timeout ({_seconds(self.timeout.connect)}): "
                "check the host and the network"
            )
        if isinstance(error, (httpx.ReadTimeout, httpx.WriteTimeout)):
            return (
                f"The server at {address} accepted the connection but sent no answer in time (read timeout "
                f"{_seconds(self.timeout.read)}; each API call gives up after {_seconds(self.retry.call_timeout)}, "
                "retries included: connection extras read_timeout and call_timeout)"
            )
        return ""

    def close(self) -> None:
        """Close the sync client (the async one must be closed on its loop with :meth:`aclose`)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._storage_client is not None:
            self._storage_client.close()
            self._storage_client = None

    async def aclose(self) -> None:
        """Close both clients."""
        self.close()
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _cut(timeout: httpx.Timeout, left: float) -> httpx.Timeout:
    """``timeout`` with every phase cut to ``left`` seconds (never below a hundredth of a second)."""
    left = max(left, 0.01)

    def cut(value: float | None) -> float:
        return left if value is None else min(value, left)

    return httpx.Timeout(
        connect=cut(timeout.connect), read=cut(timeout.read), write=cut(timeout.write), pool=cut(timeout.pool)
    )


def _seconds(value: float | None) -> str:
    """``30 s`` for 30.0, ``no limit`` for None."""
    return "no limit" if value is None else f"{value:g} s"


def _request_of(error: httpx.RequestError) -> httpx.Request | None:
    """The request an httpx error belongs to; None when httpx did not attach it."""
    try:
        return error.request
    except RuntimeError:
        return None


def _public_url(url: httpx.URL) -> str:
    """Scheme, host, port and path of ``url``: no user info, no query string, no fragment."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"


def _origin(url: httpx.URL, scheme: str) -> str:
    """``scheme://host:port`` of ``url`` with another scheme (the port is kept, it is the one that answered)."""
    return f"{scheme}://{_address(url)}"


def _address(url: httpx.URL) -> str:
    """``host:port`` of ``url``, with the scheme's default port when it has none."""
    port = url.port or (443 if url.scheme == "https" else 80)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{port}"


def _speaks_no_tls(error: BaseException) -> bool:
    """Whether a TLS handshake failed because the server answered in plain HTTP."""
    return isinstance(error, httpx.ConnectError) and any(marker in str(error) for marker in _NOT_TLS_MARKERS)


def _tls_only_hint(response: httpx.Response, text: str) -> str:
    """A hint when a TLS-only server refused a plain-HTTP request, else ""."""
    if response.status_code != 400 or not any(marker in text for marker in _TLS_ONLY_MARKERS):
        return ""
    try:
        url = response.request.url
    except RuntimeError:  # a response built without a request
        return "The server only speaks TLS: the connection's host should start with https://"
    return f"The server at {_address(url)} only speaks TLS: the connection's host should be {_origin(url, 'https')}"


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "no answer"
    if isinstance(error, httpx.HTTPError):
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return str(error)


def paginate(
    make_call: Callable[[str], ApiCall[Any]], items_key: str, *, limit: int | None = None
) -> Flow[list[Any]]:
    """Flow that follows ``nextPageToken`` until the last page (or ``limit`` items) and returns the items."""
    items: list[Any] = []
    token = ""
    seen: set[str] = set()
    while True:
        page = yield make_call(token)
        page = page if isinstance(page, dict) else {}
        items.extend(page.get(items_key) or [])
        token = str(page.get("nextPageToken") or page.get("next_page_token") or "")
        if not token or token in seen or (limit is not None and len(items) >= limit):
            return items[:limit] if limit is not None else items
        seen.add(token)
