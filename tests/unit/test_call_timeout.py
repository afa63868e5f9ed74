"""A total time per API call (``call_timeout``): a host that never answers fails fast and says where.

The hung host is a real socket server on 127.0.0.1 that accepts connections and never answers.
Margins are generous: these check that the deadline holds, not how precisely.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from raw_servers import hung_host
from scripted_server import Reply, ScriptedServer

from airflow_provider_lightning.api.errors import LightningApiError, LightningConfigError, LightningNetworkError
from airflow_provider_lightning.api.transport import ApiCall, Flow, Pause, RetryPolicy, Transport
from airflow_provider_lightning.hooks.settings import ConnectionSettings

MARGIN = 2.5  # seconds of slack on top of a budget (slow CI machines)
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)  # the connection's defaults: read_timeout 30, connect_timeout 10


def transport(url: str, timeout: httpx.Timeout = DEFAULT_TIMEOUT, **policy: float) -> Transport:
    retry = RetryPolicy(**{"backoff_initial": 0.05, "backoff_max": 0.1, **policy})  # type: ignore[arg-type]
    return Transport(url, {"Authorization": "Bearer k"}, conn_id="lightning_default", timeout=timeout, retry=retry)


def elapsed_failure(t: Transport, call: ApiCall[object]) -> tuple[float, LightningApiError]:
    start = time.monotonic()
    with pytest.raises(LightningApiError) as err:
        t.run(call)
    return time.monotonic() - start, err.value


def test_a_hung_host_fails_within_call_timeout_although_the_read_timeout_is_longer():
    with hung_host() as host:
        took, error = elapsed_failure(transport(f"http://{host.address}", call_timeout=2.0),
                                      ApiCall("GET", "/v1/auth/whoami"))
    assert 1.5 <= took < 2.0 + MARGIN
    assert isinstance(error, LightningNetworkError) and isinstance(error.__cause__, httpx.ReadTimeout)
    assert "'lightning_default'" in str(error) and host.address in str(error)
    assert "call_timeout" in str(error)


def test_retries_stop_at_call_timeout_before_max_attempts():
    with hung_host() as host:
        t = transport(f"http://{host.address}", httpx.Timeout(0.5), call_timeout=3.0, max_attempts=50)
        took, _ = elapsed_failure(t, ApiCall("GET", "/v1/auth/whoami"))
    assert took < 3.0 + MARGIN
    assert 2 <= host.accepted < 50


def test_a_call_timeout_of_the_call_itself_wins_over_the_policy():
    with hung_host() as host:
        took, _ = elapsed_failure(transport(f"http://{host.address}"), ApiCall("GET", "/v1/x", timeout=1.0))
    assert took < 1.0 + MARGIN


def test_a_retry_after_longer_than_the_time_left_is_not_waited_for():
    slow_down = Reply(429, '{"code":8,"message":"slow down"}', {"Retry-After": "30"})
    with ScriptedServer(lambda method, path: slow_down) as srv:
        took, error = elapsed_failure(transport(srv.url, call_timeout=5.0), ApiCall("GET", "/v1/memberships"))
        assert len(srv.seen) == 1
    assert error.status == 429 and took < MARGIN


@pytest.mark.asyncio
async def test_the_async_driver_keeps_the_same_deadline():
    with hung_host() as host:
        t = transport(f"http://{host.address}", call_timeout=2.0)
        start = time.monotonic()
        with pytest.raises(LightningNetworkError, match=host.address):
            await t.arun(ApiCall("GET", "/v1/auth/whoami"))
        await t.aclose()
    assert time.monotonic() - start < 2.0 + MARGIN


def test_the_default_connection_gives_up_on_a_call_well_under_90_seconds():
    settings = ConnectionSettings.build(conn_id="c", base_url="https://lightning.ai", user_id="u", api_key="k",
                                        extra={}, source="connection")
    # Without a total, a hung host took max_attempts x read_timeout plus backoff: 5 x 30 s + pauses = 2 min 45 s.
    assert settings.max_attempts * settings.read_timeout > 90
    # With it, the last attempt is cut to what is left (tests above), so a call ends by call_timeout.
    assert settings.call_timeout == 60.0


@pytest.mark.parametrize(("value", "message"), [("soon", "must be a number"), ("0.5", "must be >= 1")])
def test_a_bad_call_timeout_is_rejected(value, message):
    with pytest.raises(LightningConfigError, match=f"'call_timeout' {message}"):
        ConnectionSettings.build(conn_id="c", base_url="https://lightning.ai", user_id="u", api_key="k",
                                 extra={"call_timeout": value}, source="connection")


def _pausing_flow(seconds: float) -> Flow[str]:
    yield Pause(seconds)
    return "done"


def test_a_flow_can_pause_between_calls():
    start = time.monotonic()
    assert transport("http://127.0.0.1:9").run(_pausing_flow(0.2)) == "done"
    assert time.monotonic() - start >= 0.2


@pytest.mark.asyncio
async def test_a_pause_does_not_block_the_event_loop():
    ticks: list[float] = []

    async def tick() -> None:
        for _ in range(3):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    start = time.monotonic()
    result, _ = await asyncio.gather(transport("http://127.0.0.1:9").arun(_pausing_flow(1.0)), tick())
    assert result == "done" and time.monotonic() - start >= 1.0
    assert ticks[-1] - start < 0.8  # the loop ran while the flow paused


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
