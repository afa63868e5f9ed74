"""Real Airflow end to end: api-server, scheduler, dag-processor and triggerer processes plus the simulator.

Everything goes through the public surfaces: the REST API (``/api/v2`` with a JWT from ``/auth/token``),
the simulator's admin API, the task log files and the UI in headless Chromium (Playwright).
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import FIGURES, PROFILE

pytestmark = pytest.mark.e2e

JOB_DAG = "example_lightning_job"
KILL_DAG = "e2e_lightning_kill"
TEAMSPACE = "sim-org/sim-teamspace"


# -- helpers ---------------------------------------------------------------------------------------


def trigger(api: httpx.Client, dag_id: str) -> str:
    answer = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["dag_run_id"])


def run_path(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


def task_instances(api: httpx.Client, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    answer = api.get(f"{run_path(dag_id, run_id)}/taskInstances")
    answer.raise_for_status()
    return {ti["task_id"]: ti for ti in answer.json()["task_instances"]}


def sim_jobs(stack: dict[str, Any]) -> list[dict[str, Any]]:
    answer = httpx.get(f"{stack['simulator_url']}/__admin/jobs", timeout=10)
    answer.raise_for_status()
    return list(answer.json()["jobs"])


def sim_job(stack: dict[str, Any], job_id: str) -> dict[str, Any]:
    found = [job for job in sim_jobs(stack) if job["id"] == job_id]
    assert found, f"job {job_id} not in the simulator"
    return found[0]


def xcom(api: httpx.Client, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
    answer = api.get(f"{run_path(dag_id, run_id)}/taskInstances/{task_id}/xcomEntries/{key}")
    assert answer.status_code == 200, answer.text
    return answer.json()["value"]


def task_log_text(api: httpx.Client, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
    """The task log as the REST API serves it (worker part and the trigger's part, merged)."""
    answer = api.get(f"{run_path(dag_id, run_id)}/taskInstances/{task_id}/logs/{try_number}",
                     params={"full_content": True}, headers={"Accept": "application/json"})
    answer.raise_for_status()
    return "\n".join(str(entry.get("event", "")) for entry in answer.json()["content"])


def log_files(stack: dict[str, Any], dag_id: str, run_id: str, task_id: str) -> dict[str, str]:
    folder = Path(stack["dir"]) / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return {path.name: path.read_text(errors="replace") for path in sorted(folder.glob("attempt=1.log*"))}


def wait_for(what: str, check: Any, timeout: float, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


# -- the example DAG, run once and observed closely -----------------------------------------------


def watch_run(api: httpx.Client, dag_id: str, timeout: float = 150) -> dict[str, Any]:
    """Trigger ``dag_id`` and record every task's state changes until the run ends."""
    started = time.monotonic()
    run_id = trigger(api, dag_id)
    seen: dict[str, list[str]] = {}
    deferred: dict[str, dict[str, Any]] = {}
    while True:
        tis = task_instances(api, dag_id, run_id)
        for task_id, ti in tis.items():
            states = seen.setdefault(task_id, [])
            if not states or states[-1] != ti["state"]:
                states.append(ti["state"])
            if ti["state"] == "deferred" and not deferred.get(task_id, {}).get("triggerer_job"):
                deferred[task_id] = ti  # until a triggerer has picked the trigger up
        run = api.get(run_path(dag_id, run_id)).json()
        if run["state"] in ("success", "failed"):
            break
        assert time.monotonic() - started < timeout, f"run still {run['state']} after {timeout} s: {seen}"
        time.sleep(0.25)
    return {"run_id": run_id, "run": run, "states": seen, "deferred": deferred,
            "tis": task_instances(api, dag_id, run_id), "seconds": round(time.monotonic() - started, 1)}


def upstream_defer_race(stack: dict[str, Any], dag_id: str, run_id: str) -> list[str]:
    """Scheduler log lines of Airflow's stale defer-exit race (upstream issue numbers not verified here).

    The worker exits 0 when a task defers; if the trigger fires and the task is queued again before the
    scheduler drains that "success" executor event, Airflow 3.3.2 fails the task ("state mismatch").
    Quick deferrals on a loaded 2-core machine can hit it; it is not the provider's doing. It was measured on
    SQLite with the LocalExecutor only (``make defer-race``: 2 of 20 runs, 11 of 50 with 4 in flight; PostgreSQL
    with Celery: 0 of 20 and 0 of 50), so on the production profile no run is repeated: a failure there fails.
    """
    if stack.get("profile", PROFILE) != "local":
        return []
    log = Path(stack["dir"]) / "run" / "scheduler.log"
    marker = "finished with state success, but the task instance's state attribute is"
    return [line for line in log.read_text(errors="replace").splitlines()
            if marker in line and f"<TaskInstance: {dag_id}." in line and run_id in line]


@pytest.fixture(scope="module")
def job_run(stack: dict[str, Any], api: httpx.Client) -> dict[str, Any]:
    """``example_lightning_job`` triggered and watched; run again once if only Airflow's defer race failed it."""
    result = watch_run(api, JOB_DAG)
    if result["run"]["state"] == "failed" and (race := upstream_defer_race(stack, JOB_DAG, result["run_id"])):
        FIGURES["upstream defer race hit, run retried (an Airflow scheduler race (upstream issue not verified here))"] = race[0][:300]
        result = watch_run(api, JOB_DAG)
    FIGURES[f"{JOB_DAG}: trigger -> run {result['run']['state']} (s)"] = result["seconds"]
    return result


def test_stack_components_are_separate_healthy_processes(stack, api):
    health = api.get("/api/v2/monitor/health").json()
    for component in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert health[component]["status"] == "healthy", health
    pids = {name: info["pid"] for name, info in stack["processes"].items()}
    expected = {"simulator", "api-server", "scheduler", "dag-processor", "triggerer"}
    if PROFILE == "prod":
        import airflow_stack

        expected = {"simulator", *airflow_stack.SERVICES, *airflow_stack.PROD_COMPONENTS}
        jobs = api.get("/api/v2/jobs", params={"job_type": "TriggererJob", "job_state": "running",
                                               "is_alive": True}).json()["jobs"]
        assert len(jobs) == 2, jobs  # triggerer-1 and triggerer-2, both heartbeating
        scheduler_log = Path(stack["processes"]["scheduler"]["log"]).read_text(errors="replace")
        assert "Loaded executor: :CeleryExecutor:" in scheduler_log, scheduler_log[-2000:]
    assert set(pids) == expected
    assert len(set(pids.values())) == len(expected)
    conn = api.get("/api/v2/connections/lightning_default").json()
    assert conn["conn_type"] == "lightning" and conn["host"] == stack["simulator_url"], conn
    config = api.get("/api/v2/dags/e2e_lightning_kill").json()
    assert config["is_paused"] is False


def test_example_job_dag_succeeds(stack, job_run):
    assert job_run["run"]["state"] == "success", job_run["states"]
    assert {ti["state"] for ti in job_run["tis"].values()} == {"success"}, job_run["states"]
    if PROFILE == "prod":  # the tasks went through Redis to the Celery workers
        received = {name: celery_tasks_received(stack, name) for name in ("worker-1", "worker-2")}
        FIGURES["Celery tasks received so far"] = received
        assert sum(received.values()) >= len(job_run["tis"]), received


def celery_tasks_received(stack: dict[str, Any], worker: str) -> int:
    log = Path(stack["processes"][worker]["log"]).read_text(errors="replace")
    return sum(1 for line in log.splitlines() if "Task execute_workload[" in line and "] received" in line)


def test_job_task_was_deferred_to_the_triggerer_process(job_run):
    assert "deferred" in job_run["states"]["train"], job_run["states"]
    assert "deferred" in job_run["states"]["prepare_data"], job_run["states"]
    ti = job_run["deferred"]["train"]
    # the wait ran in the separate triggerer: the TI points at its trigger and at the TriggererJob running it
    assert ti["trigger"]["classpath"].endswith("triggers.lightning.LightningPhaseTrigger"), ti["trigger"]
    assert ti["triggerer_job"] and ti["triggerer_job"]["job_type"] == "TriggererJob", ti["triggerer_job"]


def test_task_log_has_the_lines_streamed_from_the_job(stack, api, job_run):
    text = task_log_text(api, JOB_DAG, job_run["run_id"], "train")
    for line in ("epoch 0 loss 1.000", "epoch 1 loss 0.500", "epoch 2 loss 0.333", "training done"):
        assert line in text, text[-3000:]
    # written by the triggerer (its own log file next to the worker's), not by the worker
    files = log_files(stack, JOB_DAG, job_run["run_id"], "train")
    trigger_logs = [text for name, text in files.items() if ".trigger." in name]
    assert trigger_logs and any("epoch 0 loss 1.000" in text for text in trigger_logs), list(files)


def test_extra_link_is_the_jobs_web_url(stack, api, job_run):
    run_id = job_run["run_id"]
    answer = api.get(f"{run_path(JOB_DAG, run_id)}/taskInstances/train/links")
    assert answer.status_code == 200, answer.text
    link = answer.json()["extra_links"]["Lightning Job"]
    job = sim_job(stack, xcom(api, JOB_DAG, run_id, "train", "job_id"))
    assert job["state"] == "completed"
    expected = f"{stack['simulator_url']}/{TEAMSPACE}/jobs/{job['name']}?app_id=jobs"
    assert link == expected == xcom(api, JOB_DAG, run_id, "train", "job_url")
    assert xcom(api, JOB_DAG, run_id, "train", "return_value")["url"] == expected


# -- killing a deferred task stops the remote job (trigger on_kill, Airflow 3.3) -------------------


def test_marking_a_deferred_job_task_failed_stops_the_job(stack, api):
    started = time.monotonic()
    run_id = trigger(api, KILL_DAG)

    def deferred_and_running() -> dict[str, Any] | None:
        ti = task_instances(api, KILL_DAG, run_id).get("long_job", {})
        if ti.get("state") != "deferred":
            return None
        job_id = xcom(api, KILL_DAG, run_id, "long_job", "job_id")
        job = sim_job(stack, job_id)
        return job if job["state"] == "running" else None

    job = wait_for("long_job deferred and its job running", deferred_and_running, timeout=90)
    wait_for("a streamed job log line in the trigger log",
             lambda: any("tick" in t for n, t in log_files(stack, KILL_DAG, run_id, "long_job").items()
                         if ".trigger." in n), timeout=30)
    answer = api.patch(f"{run_path(KILL_DAG, run_id)}/taskInstances/long_job", json={"new_state": "failed"})
    assert answer.status_code == 200, answer.text
    marked = time.monotonic()
    stopped = wait_for("the job stopped in the simulator",
                       lambda: (j := sim_job(stack, job["id"]))["state"] in ("stopped", "failed", "completed") and j,
                       timeout=60)
    FIGURES["mark failed -> job stopped (s)"] = round(time.monotonic() - marked, 1)
    FIGURES[f"{KILL_DAG}: whole test (s)"] = round(time.monotonic() - started, 1)
    assert stopped["state"] == "stopped", stopped
    assert task_instances(api, KILL_DAG, run_id)["long_job"]["state"] == "failed"
    trigger_log = "\n".join(t for n, t in log_files(stack, KILL_DAG, run_id, "long_job").items() if ".trigger." in n)
    assert "Task killed: stopped" in trigger_log, trigger_log[-3000:]


# -- the API key is masked wherever Airflow shows text -----------------------------------------------

SECRETS_DAG = "e2e_lightning_secrets"


def database_rows_with(stack: dict[str, Any], needle: str, skip: tuple[str, ...] = ("connection",)) -> list[str]:
    """``table: row`` for every row of Airflow's database that contains ``needle`` (the connection table aside)."""
    if PROFILE == "prod":
        return postgres_rows_with(stack, needle, skip)
    import sqlite3

    found = []
    with sqlite3.connect(f"file:{Path(stack['dir']) / 'airflow.db'}?mode=ro", uri=True) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            if table in skip:
                continue
            for row in db.execute(f'SELECT * FROM "{table}"'):
                text = " ".join(str(value) for value in row)
                if needle in text:
                    found.append(f"{table}: {text[:300]}")
    return found


def postgres_rows_with(stack: dict[str, Any], needle: str, skip: tuple[str, ...]) -> list[str]:
    """``database_rows_with`` for the prod profile's PostgreSQL (Celery's result tables included)."""
    import airflow_stack
    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(airflow_stack.sql_alchemy_conn(Path(stack["dir"]), stack["ports"], "prod"))
    found = []
    with psycopg2.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                          dbname=url.database) as db, db.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for table in [row[0] for row in cur.fetchall()]:
            if table in skip:
                continue
            cur.execute(f'SELECT * FROM "{table}"')
            for row in cur.fetchall():
                text = " ".join(str(bytes(v) if isinstance(v, memoryview) else v) for v in row)
                if needle in text:
                    found.append(f"{table}: {text[:300]}")
    db.close()
    return found


def secrets_task(api: httpx.Client, run_id: str) -> dict[str, Any]:
    return task_instances(api, SECRETS_DAG, run_id)["job_with_secret"]


def secrets_run(stack: dict[str, Any], api: httpx.Client, on_deferred: Any = None) -> str:
    """A successful run of the secrets DAG (``on_deferred()`` called once while its task is deferred);
    triggered again once if only Airflow's defer race failed it (see ``upstream_defer_race``)."""
    for _ in range(2):
        run_id = trigger(api, SECRETS_DAG)
        if on_deferred is not None:
            wait_for("job_with_secret deferred",
                     lambda run_id=run_id: secrets_task(api, run_id)["state"] == "deferred", 90, 0.2)
            on_deferred()
        ti = wait_for("the run to end", lambda run_id=run_id: (t := secrets_task(api, run_id))["state"]
                      in ("success", "failed") and t, 90)
        if ti["state"] == "success" or not (race := upstream_defer_race(stack, SECRETS_DAG, run_id)):
            break
        FIGURES[f"upstream defer race hit in {SECRETS_DAG}, run again"] = race[0][:200]
    assert ti["state"] == "success", ti
    return run_id


def test_the_api_key_is_masked_wherever_airflow_shows_text(stack, api):
    import airflow_stack

    key = airflow_stack.SIM_API_KEY
    while_deferred: list[str] = []
    run_id = secrets_run(stack, api, on_deferred=lambda: while_deferred.extend(database_rows_with(stack, key)))

    log = task_log_text(api, SECRETS_DAG, run_id, "job_with_secret")
    files = log_files(stack, SECRETS_DAG, run_id, "job_with_secret")
    rendered = api.get(f"{run_path(SECRETS_DAG, run_id)}/taskInstances/job_with_secret").json()["rendered_fields"]
    entries = api.get(f"{run_path(SECRETS_DAG, run_id)}/taskInstances/job_with_secret/xcomEntries").json()
    xcoms = {e["key"]: xcom(api, SECRETS_DAG, run_id, "job_with_secret", e["key"]) for e in entries["xcom_entries"]}

    assert "the key is ***" in log and "still ***" in log, log[-2000:]  # the job's output, streamed by the trigger
    assert rendered["env"] == {"LIGHTNING_TEST_KEY": "***"}, rendered
    assert xcoms and key not in repr(xcoms)
    assert key not in log and not [name for name, text in files.items() if key in text]
    assert while_deferred == [] and database_rows_with(stack, key) == []  # the trigger row existed while deferred


def test_clearing_a_successful_job_task_runs_its_job_again(stack, api):
    run_id = secrets_run(stack, api)
    first_job = xcom(api, SECRETS_DAG, run_id, "job_with_secret", "job_id")
    for _ in range(2):  # clear once more if only Airflow's defer race failed the cleared try
        races = len(upstream_defer_race(stack, SECRETS_DAG, run_id))
        tries = secrets_task(api, run_id)["try_number"]
        answer = api.post(f"/api/v2/dags/{SECRETS_DAG}/clearTaskInstances",
                          json={"dry_run": False, "dag_run_id": run_id, "task_ids": ["job_with_secret"],
                                "only_failed": False})
        assert answer.status_code == 200, answer.text
        ti = wait_for("the cleared task to end", lambda tries=tries: (t := secrets_task(api, run_id))["try_number"]
                      > tries and t["state"] in ("success", "failed") and t, 90)
        if ti["state"] == "success" or len(upstream_defer_race(stack, SECRETS_DAG, run_id)) == races:
            break
        FIGURES[f"upstream defer race hit in a cleared {SECRETS_DAG} try, cleared again"] = ti["try_number"]
    assert ti["state"] == "success", ti

    again = xcom(api, SECRETS_DAG, run_id, "job_with_secret", "job_id")
    assert again != first_job
    assert sim_job(stack, first_job)["state"] == "completed" and sim_job(stack, again)["state"] == "completed"
    assert sim_job(stack, again)["name"] == f"{sim_job(stack, first_job)['name']}-t{ti['try_number']}"
    log = task_log_text(api, SECRETS_DAG, run_id, "job_with_secret", try_number=ti["try_number"])
    assert "the task was cleared since" in log


# -- the UI in headless Chromium ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_page(stack, artifacts):
    """A logged-in page in headless Debian Chromium (no browser download: the system one)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.fail("/usr/bin/chromium is missing: `make browser` installs it (make e2e does)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium),
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.set_default_timeout(30_000)
            page.goto(stack["api_url"] + "/")
            page.get_by_label("Username").fill(stack["username"])
            page.get_by_label("Password").fill(stack["password"])
            page.screenshot(path=str(artifacts / "01-login.png"))
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(stack["api_url"] + "/")
            yield page
        finally:
            browser.close()


def test_ui_add_connection_form_shows_the_lightning_fields(stack, browser_page, artifacts):
    page = browser_page
    page.goto(stack["api_url"] + "/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox").fill("Lightning")
    page.get_by_role("option", name="Lightning AI").click()
    try:
        for label in ("Lightning URL", "User ID", "API key"):
            assert dialog.get_by_text(label, exact=True).is_visible(), label
        for hidden in ("Port", "Schema"):
            assert dialog.get_by_text(hidden, exact=True).count() == 0, hidden
        assert dialog.get_by_placeholder("https://lightning.ai").is_visible()
        page.screenshot(path=str(artifacts / "02-add-connection-standard-fields.png"))
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
        for label in ("Teamspace", "Project ID", "Cloud account", "Auth token (JWT)", "Connect timeout (s)",
                      "Read timeout (s)", "Max attempts"):
            field = dialog.get_by_text(label, exact=True)
            field.wait_for(state="visible")
        assert dialog.get_by_text("Teamspace as owner/teamspace", exact=False).is_visible()
        dialog.screenshot(path=str(artifacts / "03-add-connection-extra-fields.png"))
    except BaseException:
        page.screenshot(path=str(artifacts / "failed-add-connection.png"), full_page=True)
        raise
    finally:
        page.keyboard.press("Escape")


def test_ui_task_instance_shows_the_lightning_job_link(stack, api, browser_page, job_run, artifacts):
    page = browser_page
    expected = api.get(f"{run_path(JOB_DAG, job_run['run_id'])}/taskInstances/train/links").json()["extra_links"][
        "Lightning Job"]
    url = f"{stack['api_url']}/dags/{JOB_DAG}/runs/{urllib.parse.quote(job_run['run_id'], safe='')}/tasks/train/details"
    page.goto(url)
    try:
        link = page.get_by_role("link", name="Lightning Job", exact=True)
        link.wait_for(state="visible")
        assert link.get_attribute("href") == expected
        page.screenshot(path=str(artifacts / "04-task-instance-extra-link.png"))
    except BaseException:
        page.screenshot(path=str(artifacts / "failed-task-instance.png"), full_page=True)
        raise
