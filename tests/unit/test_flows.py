"""Flows driven through ``httpx.MockTransport`` (no server): create-never-twice, deployment upsert, stop/release.

Every flow runs through a real :class:`Transport` (its retry policy included), once with ``Transport.run``
and once with ``Transport.arun``; the fake API records every request so the tests count them exactly.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from airflow_provider_lightning.api.deployments import DEPLOYMENT, DeploymentSpec, upsert
from airflow_provider_lightning.api.errors import LightningApiError, LightningAuthError, LightningNetworkError
from airflow_provider_lightning.api.jobs import JOB, MMT, create_job
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.stopping import StopBudget, StopFailedError, release
from airflow_provider_lightning.api.transport import Operation, RetryPolicy, Transport

BASE = "https://lightning.test"
PROJECT = "proj-1"
JOBS = f"/v1/projects/{PROJECT}/jobs"
MMTS = f"/v1/projects/{PROJECT}/multi-machine-jobs"
DEPLOYMENTS = f"/v1/projects/{PROJECT}/deployments"
FAST = RetryPolicy(max_attempts=3, backoff_initial=0.001, backoff_max=0.002, retry_after_max=0.01, call_timeout=5.0)
BUDGET = StopBudget(total=10.0, read_seconds=3.0, request_seconds=3.0, pauses=(0.01,))
NOT_FOUND = {"code": 5, "message": "not found", "details": []}
UNAVAILABLE = {"code": 14, "message": "backend unavailable", "details": []}
HANG = object()  # an answer that never comes: the request times out after its (cut) read timeout


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    params: dict[str, str]
    body: Any


class FakeApi:
    """An in-process Lightning API: ``answer(request)`` returns a response or ``HANG``, or raises an httpx error."""

    def __init__(self, answer: Callable[[httpx.Request], Any]) -> None:
        self.answer = answer
        self.seen: list[Seen] = []

    def _record(self, request: httpx.Request) -> None:
        body = json.loads(request.content) if request.content else None
        self.seen.append(Seen(request.method, request.url.path, dict(request.url.params), body))

    @staticmethod
    def _read_timeout(request: httpx.Request) -> float:
        return float(request.extensions["timeout"]["read"])

    def handle(self, request: httpx.Request) -> httpx.Response:
        self._record(request)
        reply = self.answer(request)
        if reply is HANG:
            time.sleep(self._read_timeout(request))
            raise httpx.ReadTimeout("timed out", request=request)
        return reply

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        self._record(request)
        reply = self.answer(request)
        if reply is HANG:
            await asyncio.sleep(self._read_timeout(request))
            raise httpx.ReadTimeout("timed out", request=request)
        return reply

    def transport(self, policy: RetryPolicy = FAST) -> Transport:
        return Transport(
            BASE,
            {"Authorization": "Bearer test-key"},
            retry=policy,
            http_transport=httpx.MockTransport(self.handle),
            async_http_transport=httpx.MockTransport(self.ahandle),
        )

    def count(self, method: str, path: str | None = None) -> int:
        return sum(1 for s in self.seen if s.method == method and (path is None or s.path == path))

    def bodies(self, method: str) -> list[Any]:
        return [s.body for s in self.seen if s.method == method]

    def calls(self) -> list[tuple[str, str]]:
        return [(s.method, s.path) for s in self.seen]


@pytest.fixture(params=["sync", "async"])
def drive(request) -> Callable[..., Any]:
    """Run an operation against a :class:`FakeApi` with ``Transport.run`` or ``asyncio.run(Transport.arun)``."""

    def run(api: FakeApi, operation: Operation[Any], policy: RetryPolicy = FAST) -> Any:
        transport = api.transport(policy)
        if request.param == "sync":
            try:
                return transport.run(operation)
            finally:
                transport.close()

        async def go() -> Any:
            try:
                return await transport.arun(operation)
            finally:
                await transport.aclose()

        return asyncio.run(go())

    return run


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def unexpected(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected request {request.method} {request.url}")


def job_json(job_id: str, name: str, state: str) -> dict[str, Any]:
    return {"id": job_id, "name": name, "projectId": PROJECT, "state": state, "createdAt": "2025-06-01T10:00:00Z",
            "spec": {"image": "python:3.11", "command": "python train.py", "instanceName": "cpu-4"}}


# -- create-never-twice -------------------------------------------------------------------------------------------

JOB_BODY = {"name": "train-1", "spec": {"image": "python:3.11", "command": "python train.py", "instanceName": "cpu-4"}}


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("Server disconnected without sending a response.", request=request)


def timed_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("The read operation timed out", request=request)


def unavailable(request: httpx.Request) -> httpx.Response:
    return reply(503, UNAVAILABLE)


AMBIGUOUS = pytest.mark.parametrize("failure", [dropped, unavailable, timed_out],
                                    ids=["dropped-connection", "503", "read-timeout"])


def job_api(post_answers: list[Callable[[httpx.Request], httpx.Response]], *, creates_on_failure: bool) -> FakeApi:
    """POSTs answered in turn by ``post_answers``; a failed POST created the job when ``creates_on_failure``."""
    made: list[dict[str, Any]] = []
    posts = iter(post_answers)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == JOBS:
            job = job_json(f"job-{len(made) + 1}", "train-1", "pending")
            outcome = next(posts, None)
            if outcome is None:
                made.append(job)
                return reply(200, job)
            if creates_on_failure:
                made.append(job)
            return outcome(request)
        if request.method == "GET" and request.url.path == f"{JOBS}/find":
            return reply(200, made[0]) if made else reply(404, NOT_FOUND)
        return unexpected(request)

    return FakeApi(answer)


@AMBIGUOUS
def test_create_after_an_ambiguous_failure_returns_the_job_the_server_made_without_posting_again(drive, failure):
    api = job_api([failure], creates_on_failure=True)
    state = drive(api, create_job(PROJECT, JOB_BODY))
    assert (state.id, state.name, state.kind) == ("job-1", "train-1", "job")
    assert api.calls() == [("POST", JOBS), ("GET", f"{JOBS}/find")]
    assert api.seen[1].params == {"name": "train-1"}
    assert api.seen[0].body == JOB_BODY


@AMBIGUOUS
def test_create_after_an_ambiguous_failure_posts_again_when_the_server_made_nothing(drive, failure):
    api = job_api([failure], creates_on_failure=False)
    state = drive(api, create_job(PROJECT, JOB_BODY))
    assert state.id == "job-1"
    assert api.calls() == [("POST", JOBS), ("GET", f"{JOBS}/find"), ("POST", JOBS)]
    assert api.bodies("POST") == [JOB_BODY, JOB_BODY]


@AMBIGUOUS
@pytest.mark.parametrize("max_attempts", [1, 3])
def test_create_gives_up_after_max_attempts_posts(drive, failure, max_attempts):
    api = job_api([failure] * max_attempts, creates_on_failure=False)
    with pytest.raises(LightningApiError) as raised:
        drive(api, create_job(PROJECT, JOB_BODY, max_attempts=max_attempts))
    assert api.count("POST", JOBS) == max_attempts
    assert api.count("GET", f"{JOBS}/find") == max_attempts - 1
    if failure is unavailable:
        assert raised.value.status == 503
    else:
        assert isinstance(raised.value, LightningNetworkError)
        assert raised.value.ambiguous


@pytest.mark.parametrize("status", [400, 403, 422])
def test_create_refused_by_the_server_is_not_retried(drive, status):
    api = job_api([lambda request: reply(status, {"code": 3, "message": "invalid spec"})], creates_on_failure=False)
    with pytest.raises(LightningApiError) as raised:
        drive(api, create_job(PROJECT, JOB_BODY))
    assert raised.value.status == status
    assert api.calls() == [("POST", JOBS)]


def test_create_does_not_post_again_when_the_lookup_after_a_dropped_post_fails(drive):
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return dropped(request)
        return reply(503, UNAVAILABLE)  # the lookup by name fails too

    api = FakeApi(answer)
    with pytest.raises(LightningApiError) as raised:
        drive(api, create_job(PROJECT, JOB_BODY))
    assert raised.value.status == 503
    assert api.count("POST") == 1
    assert api.count("GET", f"{JOBS}/find") == FAST.max_attempts  # the lookup is safe to retry


def test_create_throttled_post_is_sent_again_without_a_lookup(drive):
    api = job_api([lambda request: reply(429, {"code": 8, "message": "slow down"}, {"Retry-After": "0"})],
                  creates_on_failure=False)
    state = drive(api, create_job(PROJECT, JOB_BODY))
    assert state.id == "job-1"
    assert api.calls() == [("POST", JOBS), ("POST", JOBS)]


def test_create_refused_connection_is_sent_again_without_a_lookup(drive):
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    api = job_api([refused], creates_on_failure=False)
    state = drive(api, create_job(PROJECT, JOB_BODY))
    assert state.id == "job-1"
    assert api.calls() == [("POST", JOBS), ("POST", JOBS)]


def test_create_of_a_multi_machine_job_looks_it_up_by_name_after_a_dropped_post(drive):
    body = {**JOB_BODY, "machines": 2, "clusterId": ""}
    mmt = {"id": "mmt-1", "name": "train-1", "state": "MultiMachineJob_STATE_PENDING", "machines": 2}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == MMTS:
            return dropped(request)
        if request.method == "GET" and request.url.path == f"{MMTS}/train-1/getbyname":
            return reply(200, mmt)
        return unexpected(request)

    api = FakeApi(answer)
    state = drive(api, create_job(PROJECT, body))
    assert (state.kind, state.id, state.phase) == ("mmt", "mmt-1", Phase.PENDING)
    assert api.calls() == [("POST", MMTS), ("GET", f"{MMTS}/train-1/getbyname")]


# -- deployment upsert ---------------------------------------------------------------------------------------------


def spec_body(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": "my-api", "image": "ghcr.io/acme/srv:1", "command": "python serve.py",
                              "env": {"A": "1", "B": "2"}, "replicas": 2}
    return DeploymentSpec(**{**fields, **changes}).validated().body()


def on_server(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the server stores and returns it: read-only and extra fields added, env in another order."""
    server = copy.deepcopy(body)
    server.update(
        id="dep_1", projectId=PROJECT, userId="user-1", createdAt="2025-06-01T10:00:00Z", releaseId="rel-1",
        currentState="DEPLOYMENT_STATE_RUNNING", desiredState="DEPLOYMENT_STATE_RUNNING",
        status={"readyReplicas": 2, "urls": ["https://8000-dep1.litng.ai"], "firstJobStateCurrentRelease": "running"},
    )
    server["autoscaling"]["scaleDownCooldownSeconds"] = "300"
    server["spec"]["pathMappings"] = []
    server["spec"]["env"] = list(reversed(server["spec"]["env"]))
    server["strategy"]["rollingUpdate"]["shutdownDelayMinutes"] = "0"
    return server


def scaled_to_zero(server: dict[str, Any]) -> dict[str, Any]:
    stopped = copy.deepcopy(server)
    stopped["autoscaling"].update(minReplicas="0", maxReplicas="0")
    stopped.update(replicas=0, currentState="DEPLOYMENT_STATE_STOPPED",
                   status={"readyReplicas": 0, "urls": [], "firstJobStateCurrentRelease": "stopped"})
    return stopped


def deployment_api(existing: dict[str, Any] | None, *, drop_first_post: bool = False) -> FakeApi:
    """A stateful deployments API holding at most ``dep_1``; a PUT stores (and echoes) the whole body."""
    stored = {"current": copy.deepcopy(existing)}
    posts = {"count": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        current = stored["current"]
        if request.method == "GET" and request.url.path in (f"{DEPLOYMENTS}/my-api/getbyname", f"{DEPLOYMENTS}/dep_1"):
            return reply(200, current) if current else reply(404, NOT_FOUND)
        if request.method == "POST" and request.url.path == DEPLOYMENTS:
            posts["count"] += 1
            stored["current"] = on_server(json.loads(request.content))
            return dropped(request) if drop_first_post and posts["count"] == 1 else reply(200, stored["current"])
        if request.method == "PUT" and request.url.path == f"{DEPLOYMENTS}/dep_1" and current:
            stored["current"] = json.loads(request.content)
            return reply(200, stored["current"])
        return unexpected(request)

    return FakeApi(answer)


def test_upsert_creates_a_missing_deployment(drive):
    api = deployment_api(None)
    result = drive(api, upsert(PROJECT, spec_body()))
    assert (result.action, result.changes, result.started) == ("created", (), False)
    assert result.state.id == "dep_1"
    assert api.calls() == [("GET", f"{DEPLOYMENTS}/my-api/getbyname"), ("POST", DEPLOYMENTS)]
    assert api.bodies("POST") == [spec_body()]


def test_upsert_after_a_dropped_create_adopts_the_deployment_the_server_made(drive):
    api = deployment_api(None, drop_first_post=True)
    result = drive(api, upsert(PROJECT, spec_body()))
    assert result.action == "created" and result.state.id == "dep_1"
    assert api.count("POST") == 1
    assert api.calls()[-1] == ("GET", f"{DEPLOYMENTS}/my-api/getbyname")


def test_upsert_leaves_an_identical_deployment_alone(drive):
    api = deployment_api(on_server(spec_body()))
    result = drive(api, upsert(PROJECT, spec_body()))
    assert (result.action, result.changes, result.started) == ("unchanged", (), False)
    assert result.state.id == "dep_1" and result.state.phase is Phase.RUNNING
    assert api.calls() == [("GET", f"{DEPLOYMENTS}/my-api/getbyname")]


def test_upsert_sends_one_full_object_put_when_one_field_differs(drive):
    server = on_server(spec_body())
    api = deployment_api(server)
    result = drive(api, upsert(PROJECT, spec_body(image="ghcr.io/acme/srv:2")))
    assert (result.action, result.changes, result.started) == ("updated", ("spec.image",), False)
    assert api.calls() == [("GET", f"{DEPLOYMENTS}/my-api/getbyname"), ("PUT", f"{DEPLOYMENTS}/dep_1")]
    expected = copy.deepcopy(server)  # every field the server sent, read-only ones included, one changed
    expected["spec"]["image"] = "ghcr.io/acme/srv:2"
    assert api.bodies("PUT") == [expected]


def test_upsert_merges_a_changed_autoscaling_into_the_servers_object(drive):
    server = on_server(spec_body())
    api = deployment_api(server)
    result = drive(api, upsert(PROJECT, spec_body(autoscale={"min_replicas": 1, "max_replicas": 4})))
    assert (result.action, result.changes) == ("updated", ("autoscaling",))
    (put,) = api.bodies("PUT")
    assert put["autoscaling"] == {**server["autoscaling"], "minReplicas": "1", "maxReplicas": "4"}
    assert put["autoscaling"]["scaleDownCooldownSeconds"] == "300"  # a server field this spec does not set
    assert {k: v for k, v in put.items() if k != "autoscaling"} == {
        k: v for k, v in server.items() if k != "autoscaling"
    }


def test_upsert_run_twice_updates_once(drive):
    api = deployment_api(on_server(spec_body()))
    first = drive(api, upsert(PROJECT, spec_body(image="ghcr.io/acme/srv:2")))
    second = drive(api, upsert(PROJECT, spec_body(image="ghcr.io/acme/srv:2")))
    assert (first.action, second.action) == ("updated", "unchanged")
    assert api.count("PUT") == 1


def test_upsert_starts_a_scaled_to_zero_deployment_again(drive):
    api = deployment_api(scaled_to_zero(on_server(spec_body())))
    result = drive(api, upsert(PROJECT, spec_body()))
    assert result.action == "updated"
    assert result.started is True
    assert "desiredState (start)" in result.changes
    assert "autoscaling" in result.changes
    (put,) = api.bodies("PUT")
    assert put["desiredState"] == "DEPLOYMENT_STATE_RUNNING"
    assert (put["autoscaling"]["minReplicas"], put["autoscaling"]["maxReplicas"]) == ("2", "2")
    assert put["replicas"] == 2
    assert api.count("POST") == 0


def test_upsert_of_a_running_deployment_does_not_report_a_start(drive):
    server = on_server(spec_body())
    del server["desiredState"]
    api = deployment_api(server)
    result = drive(api, upsert(PROJECT, spec_body(replicas=3)))
    assert (result.action, result.changes, result.started) == ("updated", ("autoscaling", "replicas"), False)
    (put,) = api.bodies("PUT")
    assert "desiredState" not in put
    assert (put["replicas"], put["autoscaling"]["minReplicas"], put["autoscaling"]["maxReplicas"]) == (3, "3", "3")


# -- stop / release ------------------------------------------------------------------------------------------------


def job_stop_api(state: str | None, *, get: Callable[[httpx.Request], Any] | None = None,
                 put: Callable[[httpx.Request], Any] | None = None,
                 delete: Callable[[httpx.Request], Any] | None = None) -> FakeApi:
    """``job-1`` in raw ``state`` (None: it does not exist); each method may be answered by a function instead."""

    def answer(request: httpx.Request) -> Any:
        if request.url.path != f"{JOBS}/job-1":
            return unexpected(request)
        custom = {"GET": get, "PUT": put, "DELETE": delete}.get(request.method)
        if custom is not None:
            return custom(request)
        if state is None:
            return reply(404, NOT_FOUND)
        if request.method == "GET":
            return reply(200, job_json("job-1", "train-1", state))
        if request.method == "PUT":
            return reply(200, job_json("job-1", "train-1", "stop"))
        if request.method == "DELETE":
            return reply(200, {})
        return unexpected(request)

    return FakeApi(answer)


def test_release_stops_a_running_job_with_one_put(drive):
    api = job_stop_api("running")
    assert drive(api, release(JOB, PROJECT, "job-1", budget=BUDGET)) == "stopped"
    assert api.calls() == [("GET", f"{JOBS}/job-1"), ("PUT", f"{JOBS}/job-1")]
    assert api.bodies("PUT") == [{"state": "stop"}]


@pytest.mark.parametrize(("raw", "phase"), [("completed", "completed"), ("failed", "failed"), ("stopped", "stopped"),
                                            ("deleted", "stopped"), ("cancelled", "stopped")])
def test_release_of_an_ended_job_sends_no_stop(drive, raw, phase):
    api = job_stop_api(raw)
    assert drive(api, release(JOB, PROJECT, "job-1", budget=BUDGET)) == f"nothing to stop ({phase})"
    assert api.calls() == [("GET", f"{JOBS}/job-1")]


@pytest.mark.parametrize("raw", ["complete", "fail"])
def test_release_does_not_relabel_a_job_that_exited_while_its_logs_are_collected(drive, raw):
    api = job_stop_api(raw)
    drive(api, release(JOB, PROJECT, "job-1", budget=BUDGET))
    assert api.count("PUT") == 0


def test_release_of_a_missing_job_says_already_gone(drive):
    api = job_stop_api(None)
    assert drive(api, release(JOB, PROJECT, "job-1", budget=BUDGET)) == "already gone"
    assert api.calls() == [("GET", f"{JOBS}/job-1")]


def test_release_says_already_gone_when_the_job_vanishes_before_the_stop(drive):
    api = job_stop_api("running", put=lambda request: reply(404, NOT_FOUND))
    assert drive(api, release(JOB, PROJECT, "job-1", budget=BUDGET)) == "already gone"
    assert api.count("PUT") == 1


def test_release_with_delete_sends_one_delete_and_no_read(drive):
    api = job_stop_api("running")
    assert drive(api, release(JOB, PROJECT, "job-1", delete=True, budget=BUDGET)) == "deleted"
    assert api.calls() == [("DELETE", f"{JOBS}/job-1")]


def test_release_with_delete_of_a_missing_job_says_already_gone(drive):
    api = job_stop_api(None)
    assert drive(api, release(JOB, PROJECT, "job-1", delete=True, budget=BUDGET)) == "already gone"
    assert api.calls() == [("DELETE", f"{JOBS}/job-1")]


@pytest.mark.parametrize(
    ("failure", "budget", "reads"),
    [
        (unavailable, BUDGET, FAST.max_attempts),
        (dropped, BUDGET, FAST.max_attempts),
        (lambda request: HANG, StopBudget(total=10.0, read_seconds=0.3, request_seconds=3.0, pauses=(0.01,)), 1),
    ],
    ids=["503s", "dropped", "hangs"],
)
def test_release_sends_the_stop_even_when_the_read_fails(drive, failure, budget, reads):
    api = job_stop_api("running", get=failure)
    started = time.monotonic()
    assert drive(api, release(JOB, PROJECT, "job-1", budget=budget)) == "stopped"
    assert time.monotonic() - started < budget.read_seconds + 1.0
    assert api.count("GET") == reads
    assert api.bodies("PUT") == [{"state": "stop"}]


@pytest.mark.parametrize("delete", [False, True], ids=["stop", "delete"])
@pytest.mark.parametrize("outage", [unavailable, lambda request: HANG], ids=["503s", "hangs"])
def test_release_raises_stop_failed_within_the_budget_when_the_outage_outlasts_it(drive, outage, delete):
    budget = StopBudget(total=0.8, read_seconds=0.2, request_seconds=0.2, pauses=(0.05,))
    api = FakeApi(outage)
    started = time.monotonic()
    with pytest.raises(StopFailedError, match="could not be deleted" if delete else "could not be stopped"):
        drive(api, release(JOB, PROJECT, "job-1", delete=delete, budget=budget))
    elapsed = time.monotonic() - started
    # Each request's timeout is cut to what is left of the budget, but never below 0.1 s (stopping._within):
    # the last round may end up to one read plus one stop request (0.2 s) after the budget.
    assert elapsed < budget.total + 0.3
    writes = api.count("DELETE" if delete else "PUT")
    assert writes >= 2  # it tried again after the first failed round


@pytest.mark.parametrize(
    ("state", "overrides", "expected_calls"),
    [
        ("running", {"get": lambda request: reply(401, {"code": 16, "message": "unauthenticated"})},
         [("GET", f"{JOBS}/job-1")]),
        ("running", {"put": lambda request: reply(403, {"code": 7, "message": "permission denied"})},
         [("GET", f"{JOBS}/job-1"), ("PUT", f"{JOBS}/job-1")]),
        ("running", {"put": lambda request: reply(400, {"code": 3, "message": "bad state"})},
         [("GET", f"{JOBS}/job-1"), ("PUT", f"{JOBS}/job-1")]),
    ],
    ids=["read-401", "stop-403", "stop-400"],
)
def test_release_does_not_retry_a_refused_request(drive, state, overrides, expected_calls):
    api = job_stop_api(state, **overrides)
    with pytest.raises(LightningApiError) as raised:
        drive(api, release(JOB, PROJECT, "job-1", budget=BUDGET))
    assert api.calls() == expected_calls
    assert raised.value.status in (400, 401, 403)


def test_release_with_delete_does_not_retry_a_401(drive):
    api = job_stop_api("running", delete=lambda request: reply(401, {"code": 16, "message": "unauthenticated"}))
    with pytest.raises(LightningAuthError):
        drive(api, release(JOB, PROJECT, "job-1", delete=True, budget=BUDGET))
    assert api.calls() == [("DELETE", f"{JOBS}/job-1")]


def test_release_stops_a_running_multi_machine_job_with_its_own_body(drive):
    mmt = {"id": "mmt-1", "name": "train-1", "state": "MultiMachineJob_STATE_RUNNING"}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path != f"{MMTS}/mmt-1":
            return unexpected(request)
        return reply(200, mmt)

    api = FakeApi(answer)
    assert drive(api, release(MMT, PROJECT, "mmt-1", budget=BUDGET)) == "stopped"
    assert api.calls() == [("GET", f"{MMTS}/mmt-1"), ("PUT", f"{MMTS}/mmt-1")]
    assert api.bodies("PUT") == [{"desiredState": "MultiMachineJob_STATE_STOP"}]


def failed_deployment() -> dict[str, Any]:
    server = on_server(spec_body(autoscale={"min_replicas": 1, "max_replicas": 2}))
    server.update(currentState="DEPLOYMENT_STATE_FAILED", replicas=1,
                  status={"readyReplicas": 0, "failingReplicas": 1, "urls": [], "message": "CrashLoopBackOff"})
    return server


def test_release_scales_a_failed_deployment_to_zero(drive):
    server = failed_deployment()
    api = deployment_api(server)
    assert DEPLOYMENT.read(server).phase is Phase.FAILED
    assert drive(api, release(DEPLOYMENT, PROJECT, "dep_1", budget=BUDGET)) == "stopped"
    assert api.count("PUT") == 1
    expected = copy.deepcopy(server)  # the whole object, only the autoscaling bounds changed
    expected["autoscaling"].update(minReplicas="0", maxReplicas="0")
    assert api.bodies("PUT") == [expected]


def test_release_leaves_a_deployment_scaled_to_zero_with_no_replica_left_alone(drive):
    api = deployment_api(scaled_to_zero(on_server(spec_body())))
    assert drive(api, release(DEPLOYMENT, PROJECT, "dep_1", budget=BUDGET)) == "nothing to stop (stopped)"
    assert api.calls() == [("GET", f"{DEPLOYMENTS}/dep_1")]


def test_release_does_not_scale_a_draining_deployment_to_zero_twice(drive):
    draining = scaled_to_zero(on_server(spec_body()))
    draining["status"] = {"readyReplicas": 1, "deletingReplicas": 1, "urls": []}
    api = deployment_api(draining)
    assert drive(api, release(DEPLOYMENT, PROJECT, "dep_1", budget=BUDGET)) == "stopped"
    assert api.count("PUT") == 0
