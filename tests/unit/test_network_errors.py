"""Network failures leave the transport as LightningNetworkError naming connection, method and URL.

Real loopback servers only: a closed port, a server that drops connections, a plain-HTTP server
addressed with https://, a TLS-only server's answers to plain HTTP.
"""

from __future__ import annotations

import pickle

import httpx
import pytest
from raw_servers import RawServer
from scripted_server import Reply, ScriptedServer

from airflow_provider_lightning.api.errors import LightningApiError, LightningNetworkError
from airflow_provider_lightning.api.transport import AMBIGUOUS_ERRORS, ApiCall, Flow, RetryPolicy, Transport

QUICK = RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.02)
AUTH = "Basic c2VjcmV0LXVzZXI6c2VjcmV0LWtleQ=="
CLOSED_PORT = "http://127.0.0.1:9"  # discard: nothing listens there


def transport(url: str) -> Transport:
    return Transport(url, {"Authorization": AUTH}, conn_id="lightning_default", retry=QUICK)


def network_error(url: str, call: ApiCall[object]) -> LightningNetworkError:
    with pytest.raises(LightningNetworkError) as err:
        transport(url).run(call)
    return err.value


def test_a_refused_connection_names_the_connection_method_and_url_but_not_the_query():
    error = network_error(CLOSED_PORT, ApiCall("GET", "/v1/projects/p1/jobs/find", params={"name": "secret-job"}))
    assert str(error).startswith(
        "Lightning connection 'lightning_default': GET http://127.0.0.1:9/v1/projects/p1/jobs/find failed: "
        "ConnectError: "
    )
    assert "secret-job" not in str(error) and "c2VjcmV0" not in str(error)
    assert (error.status, error.method, error.path, error.conn_id) == (0, "GET", "/v1/projects/p1/jobs/find",
                                                                      "lightning_default")


def test_a_refused_connection_is_retryable_and_not_ambiguous():
    error = network_error(CLOSED_PORT, ApiCall("POST", "/v1/projects/p1/jobs", json={}, idempotent=False))
    assert error.retryable and not error.ambiguous
    assert isinstance(error.__cause__, httpx.ConnectError)


def test_a_dropped_connection_is_ambiguous():
    with ScriptedServer(lambda method, path: Reply(drop=True)) as srv:
        error = network_error(srv.url, ApiCall("GET", "/v1/auth/whoami"))
    assert error.ambiguous and isinstance(error.__cause__, AMBIGUOUS_ERRORS)


def test_the_network_error_is_still_an_httpx_transport_error_with_its_request():
    error = network_error(CLOSED_PORT, ApiCall("GET", "/v1/auth/whoami"))
    assert isinstance(error, httpx.TransportError) and isinstance(error, LightningApiError)
    assert error.request.method == "GET" and error.request.url.path == "/v1/auth/whoami"


def test_a_network_error_survives_pickling_without_the_credentials():
    error = network_error(CLOSED_PORT, ApiCall("GET", "/v1/auth/whoami"))
    data = pickle.dumps(error)
    copy = pickle.loads(data)
    assert type(copy) is LightningNetworkError and str(copy) == str(error)
    assert (copy.method, copy.url, copy.conn_id, copy.ambiguous, copy.hint) == (
        error.method, error.url, error.conn_id, error.ambiguous, error.hint)
    assert copy.request.url == httpx.URL("http://127.0.0.1:9/v1/auth/whoami") and "authorization" not in copy.request.headers
    assert b"c2VjcmV0" not in data


def _flow_that_records(seen: list[type[BaseException]]) -> Flow[object]:
    try:
        return (yield ApiCall("GET", "/v1/auth/whoami"))
    except AMBIGUOUS_ERRORS as error:
        seen.append(type(error))
        raise


def test_a_flow_is_thrown_the_raw_httpx_error_and_its_caller_gets_the_named_one():
    seen: list[type[BaseException]] = []
    with ScriptedServer(lambda method, path: Reply(drop=True)) as srv:
        with pytest.raises(LightningNetworkError, match="lightning_default"):
            transport(srv.url).run(_flow_that_records(seen))
    assert seen and issubclass(seen[0], httpx.RemoteProtocolError)


@pytest.mark.asyncio
async def test_the_async_driver_names_network_errors_too():
    t = transport(CLOSED_PORT)
    with pytest.raises(LightningNetworkError, match="'lightning_default': GET http://127.0.0.1:9/v1/auth/whoami"):
        await t.arun(ApiCall("GET", "/v1/auth/whoami"))
    await t.aclose()


def test_https_to_a_plain_http_server_hints_at_http_and_is_not_retried():
    with ScriptedServer(lambda method, path: Reply(200, "{}")) as srv:
        https = srv.url.replace("http://", "https://")
        t = transport(https)
        with pytest.raises(LightningNetworkError) as err:
            t.run(ApiCall("GET", "/v1/auth/whoami"))
    address = https.removeprefix("https://")
    assert f"The server at {address} does not speak TLS" in str(err.value)
    assert f"meant to be http://{address}?" in str(err.value)
    assert t.stats.requests == 1


def test_plain_http_refused_by_a_tls_only_server_hints_at_https():
    nginx = "<html><center>The plain HTTP request was sent to HTTPS port</center></html>"
    with ScriptedServer(lambda method, path: Reply(400, nginx, {"Content-Type": "text/html"})) as srv:
        with pytest.raises(LightningApiError) as err:
            transport(srv.url).run(ApiCall("GET", "/v1/auth/whoami"))
    address = srv.url.removeprefix("http://")
    assert err.value.status == 400 and f"should be https://{address}" in str(err.value)


def test_a_tls_alert_answering_plain_http_hints_at_https():
    tls_alert = b"\x15\x03\x01\x00\x02\x02\x46"  # what a TLS server may send back to a plain-HTTP request
    with RawServer(tls_alert) as srv:
        with pytest.raises(LightningNetworkError) as err:
            transport(f"http://{srv.address}").run(ApiCall("GET", "/v1/auth/whoami"))
    assert f"is not HTTP: if that server speaks TLS, the connection's host should be https://{srv.address}" in str(
        err.value)


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
