"""The transport over real loopback HTTP: retry policy, Retry-After, error mapping, request shape."""

from __future__ import annotations

import email.utils
import json
import logging
import time

import httpx
import pytest
from scripted_server import Reply, ScriptedServer

from airflow_provider_lightning.api.errors import (
    LightningApiError,
    LightningAuthError,
    LightningNetworkError,
    LightningResponseError,
)
from airflow_provider_lightning.api.transport import ApiCall, RetryPolicy, Transport, parse_retry_after

FAST = RetryPolicy(max_attempts=4, backoff_initial=0.01, backoff_max=0.02, retry_after_max=0.3)


def transport(url: str, policy: RetryPolicy = FAST) -> Transport:
    return Transport(url, {"Authorization": "Basic c2VjcmV0LXVzZXI6c2VjcmV0LWtleQ=="}, retry=policy,
                     auth_hint="Fix the connection 'lightning_default'.")


def sequence(*replies: Reply):
    queue = list(replies)
    return lambda method, path: queue.pop(0) if len(queue) > 1 else queue[0]


def test_retries_5xx_then_returns_the_answer():
    with ScriptedServer(sequence(Reply(503, '{"code":14,"message":"unavailable"}'), Reply(502, "bad gateway",
                                 {"Content-Type": "text/plain"}), Reply(200, '{"ok":true}'))) as srv:
        assert transport(srv.url).run(ApiCall("GET", "/v1/auth/whoami")) == {"ok": True}
        assert len(srv.seen) == 3


def test_retry_after_seconds_is_honoured(caplog):
    caplog.set_level(logging.WARNING)
    with ScriptedServer(sequence(Reply(429, '{"code":8,"message":"slow down"}',
                                       {"Retry-After": "0.25", "Content-Type": "application/json"}),
                                 Reply(200, "{}"))) as srv:
        t = transport(srv.url)
        t.run(ApiCall("GET", "/v1/memberships"))
    assert t.stats.retry_after_honoured == 1
    assert "retrying in 0.2 s" in caplog.text or "retrying in 0.3 s" in caplog.text


def test_retry_after_is_capped(caplog):
    caplog.set_level(logging.WARNING)
    with ScriptedServer(sequence(Reply(503, "{}", {"Retry-After": "3600"}), Reply(200, "{}"))) as srv:
        transport(srv.url).run(ApiCall("GET", "/v1/memberships"))
    assert "retrying in 0.3 s" in caplog.text  # FAST.retry_after_max, not an hour


def test_retry_after_http_date_is_understood():
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= parse_retry_after(date, now=now) <= 31
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_not_retried(status):
    with ScriptedServer(sequence(Reply(status, json.dumps({"code": 3, "message": "nope", "details": []})))) as srv:
        with pytest.raises(LightningApiError) as err:
            transport(srv.url).run(ApiCall("GET", "/v1/projects/p/jobs/j"))
        assert len(srv.seen) == 1
    assert err.value.status == status


def test_gives_up_after_max_attempts_with_status_and_server_message():
    with ScriptedServer(sequence(Reply(503, '{"code":14,"message":"backend unavailable","details":[]}'))) as srv:
        with pytest.raises(LightningApiError) as err:
            transport(srv.url).run(ApiCall("GET", "/v1/projects/p1/jobs/j1"))
        assert len(srv.seen) == FAST.max_attempts
    error = err.value
    assert (error.status, error.code, error.message, error.method, error.path) == (
        503, 14, "backend unavailable", "GET", "/v1/projects/p1/jobs/j1")
    assert "503" in str(error) and "backend unavailable" in str(error)


def test_401_says_which_connection_and_never_shows_the_key():
    with ScriptedServer(sequence(Reply(401, '{"code":16,"message":"unauthenticated","details":[]}'))) as srv:
        with pytest.raises(LightningAuthError) as err:
            transport(srv.url).run(ApiCall("GET", "/v1/auth/whoami"))
    assert "lightning_default" in str(err.value)
    assert "c2VjcmV0" not in str(err.value) and "secret-key" not in str(err.value)


def test_html_answer_gives_a_clear_error():
    page = "<!DOCTYPE html><html><body>Sign in</body></html>"
    with ScriptedServer(sequence(Reply(200, page, {"Content-Type": "text/html"}))) as srv:
        with pytest.raises(LightningResponseError, match="text/html"):
            transport(srv.url).run(ApiCall("GET", "/v1/auth/whoami"))


def test_truncated_json_gives_a_clear_error():
    with ScriptedServer(sequence(Reply(200, '{"id": "job-1", "na'))) as srv:
        with pytest.raises(LightningResponseError, match="does not parse as JSON"):
            transport(srv.url).run(ApiCall("GET", "/v1/projects/p/jobs/job-1"))


def test_html_error_page_keeps_status_and_a_snippet():
    with ScriptedServer(sequence(Reply(404, "<html>Not Found</html>", {"Content-Type": "text/html"}))) as srv:
        with pytest.raises(LightningApiError) as err:
            transport(srv.url).run(ApiCall("GET", "/v1/x"))
    assert err.value.status == 404 and "Not Found" in err.value.message


def test_create_calls_are_not_retried_after_an_ambiguous_failure():
    with ScriptedServer(sequence(Reply(503, "{}"), Reply(200, "{}"))) as srv:
        with pytest.raises(LightningApiError):
            transport(srv.url).run(ApiCall("POST", "/v1/projects/p/jobs", json={"name": "a"}, idempotent=False))
        assert len(srv.seen) == 1


def test_create_calls_are_retried_on_429_which_means_not_processed():
    with ScriptedServer(sequence(Reply(429, "{}", {"Retry-After": "0"}), Reply(200, '{"id":"j"}'))) as srv:
        result = transport(srv.url).run(ApiCall("POST", "/v1/projects/p/jobs", json={}, idempotent=False))
        assert result == {"id": "j"} and len(srv.seen) == 2


def test_dropped_connection_is_retried_for_reads():
    with ScriptedServer(sequence(Reply(drop=True), Reply(200, '{"a":1}'))) as srv:
        assert transport(srv.url).run(ApiCall("GET", "/v1/auth/whoami")) == {"a": 1}


def test_connection_refused_is_retried_then_raised_as_a_network_error():
    t = transport("http://127.0.0.1:9", RetryPolicy(max_attempts=2, backoff_initial=0.01))
    with pytest.raises(LightningNetworkError) as err:
        t.run(ApiCall("GET", "/v1/auth/whoami"))
    assert t.stats.requests == 2
    assert isinstance(err.value.__cause__, httpx.ConnectError) and "127.0.0.1:9" in str(err.value)


def test_request_shape_matches_the_sdk():
    with ScriptedServer(sequence(Reply(200, "{}"))) as srv:
        t = transport(srv.url)
        t.run(ApiCall("DELETE", "/v1/projects/p/jobs/j", params={"cloudspaceId": ""}))
        t.run(ApiCall("GET", "/v1/projects/p/page-logs", params={"jobIds": ["a", "b"], "standalone": True}))
    delete, get = srv.seen
    assert delete.body == b"{}" and delete.path == "/v1/projects/p/jobs/j?cloudspaceId="
    assert get.path == "/v1/projects/p/page-logs?jobIds=a&jobIds=b&standalone=true"
    assert delete.headers["Content-Type"] == "application/json"
    assert delete.headers["Authorization"].startswith("Basic ")


@pytest.mark.asyncio
async def test_async_driver_uses_the_same_policy():
    with ScriptedServer(sequence(Reply(503, "{}"), Reply(429, "{}", {"Retry-After": "0"}), Reply(200, '{"x":2}'))) as srv:
        t = transport(srv.url)
        assert await t.arun(ApiCall("GET", "/v1/auth/whoami")) == {"x": 2}
        await t.aclose()
        assert len(srv.seen) == 3 and t.stats.retry_after_honoured == 1


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
