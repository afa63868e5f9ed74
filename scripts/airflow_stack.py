"""A real local Airflow 3 stack on 127.0.0.1 plus the Lightning simulator (``make airflow`` / ``make airflow-stop``).

``start`` launches, each in its own process group (session) with its output in ``<dir>/run/<name>.log``:

* ``lightning-simulator`` on a free port (state file and job folders under ``<dir>/simulator``);
* ``airflow api-server`` (UI + REST API + Execution API), ``airflow scheduler`` (LocalExecutor with
  ``parallelism`` 4), ``airflow dag-processor`` and ``airflow triggerer``, all on one SQLite metadata DB.
  Airflow 3 accepts LocalExecutor on SQLite: task processes never open the DB, they talk to the
  Execution API; so deferral runs in the real, separate triggerer process.

Then it waits until ``/api/v2/monitor/health`` reports every component healthy, creates (or updates) the
``lightning_default`` connection in the metadata DB through the REST API so it points at the simulator
and shows in the UI, waits for the DAGs to be parsed and unpauses the ones without a schedule, prints
the UI address and the login and returns. PIDs, ports and URLs are kept in ``<dir>/stack.json`` (and
``<dir>/pids/<name>.pid``). ``stop`` sends SIGTERM to each recorded process group, then SIGKILL to
whatever is left, including any stray process that carries this stack's marker
(``AIRFLOW_STACK_DIR=<dir>`` in its environment) or runs in the simulator's job folder.

Usage::

    python scripts/airflow_stack.py start [--dir DIR] [--fresh] [--extra-dags PATH] [--port N]
    python scripts/airflow_stack.py status [--dir DIR]
    python scripts/airflow_stack.py stop [--dir DIR]
    eval "$(python scripts/airflow_stack.py env)"   # then `airflow dags list` talks to the same stack

Only the standard library is needed for ``stop``; ``start`` and ``status`` use httpx.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".airflow_home" / "stack"
DAGS_FOLDER = ROOT / "example_dags"
USERNAME = "admin"
PASSWORD = "admin"
CONN_ID = "lightning_default"
SIM_API_KEY = "sim-key"  # the simulator's default API key, stored as the connection's password
MARKER = "AIRFLOW_STACK_DIR"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTH_KEYS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


class StackError(RuntimeError):
    """The stack could not be started (the message says why; the component logs say more)."""


# -- small helpers ---------------------------------------------------------------------------------


def _bin(name: str) -> str:
    """An executable of this virtualenv (the one running this script), else from PATH."""
    here = Path(sys.executable).with_name(name)
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise StackError(f"{name!r} not found next to {sys.executable} nor on PATH (run `make install`)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def state_path(stack_dir: Path) -> Path:
    return stack_dir / "stack.json"


def load_state(stack_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads(state_path(stack_dir).read_text())
    except (OSError, ValueError):
        return None


def _save_state(stack_dir: Path, state: dict[str, Any]) -> None:
    tmp = state_path(stack_dir).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(state_path(stack_dir))


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def _start_time(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _alive(pid: int) -> bool:
    fields = _proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _session_members(pgid: int) -> list[int]:
    """Live processes whose process group or session is ``pgid`` (each component leads its own session)."""
    members = []
    for pid in _all_pids():
        fields = _proc_stat(pid)
        if fields and len(fields) > 3 and str(pgid) in (fields[2], fields[3]) and fields[0] not in ("Z", "X"):
            members.append(pid)
    return members


def _members(info: dict[str, Any]) -> list[int]:
    """The live processes of a recorded component: its session, if that session is still the one started.

    While any process of a session is alive its id cannot be reused, so members of a session whose leader
    is gone are ours; a live leader must still have the start time recorded at launch.
    """
    pid = int(info["pgid"])
    if _alive(pid) and _start_time(pid) != info.get("start_time"):
        return []  # the pid was reused by an unrelated process
    return _session_members(pid)


def _has_marker(pid: int, stack_dir: Path) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{MARKER}={stack_dir}".encode() in environ


def _cwd_under(pid: int, folder: Path) -> bool:
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return cwd == folder or folder in cwd.parents


def _ancestors() -> set[int]:
    """This process and its parents (never to be signalled, whatever their environment says)."""
    seen, pid = set(), os.getpid()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        fields = _proc_stat(pid)
        pid = int(fields[1]) if fields else 0
    return seen


def stack_processes(stack_dir: Path, state: dict[str, Any] | None = None) -> list[int]:
    """Live processes of this stack: in a recorded session, with the stack's marker in their environment
    (``setproctitle`` can hide it), or running in the simulator's job folder (jobs get their own session)."""
    stack_dir = Path(stack_dir).resolve()
    state = state if state is not None else (load_state(stack_dir) or {})
    found = {p for info in state.get("processes", {}).values() for p in _members(info)}
    work = stack_dir / "simulator" / "work"
    for pid in _all_pids():
        if pid not in found and _alive(pid) and (_has_marker(pid, stack_dir) or _cwd_under(pid, work)):
            found.add(pid)
    return sorted(found - _ancestors())


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
    return total


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


# -- environment -----------------------------------------------------------------------------------


def _secrets(stack_dir: Path) -> dict[str, str]:
    """JWT secret and Fernet key, made once per stack folder (the DB keeps connections encrypted with it)."""
    path = stack_dir / "secrets.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        values = {
            "jwt_secret": secrets.token_urlsafe(32),
            "fernet_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        path.write_text(json.dumps(values) + "\n")
        path.chmod(0o600)
        return values


def airflow_env(stack_dir: Path, ports: dict[str, int], extra_dags: list[str]) -> dict[str, str]:
    """The environment every Airflow component (and the CLI) of this stack runs with."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # no leaking test config
    for var in ("LIGHTNING_USER_ID", "LIGHTNING_API_KEY", "LIGHTNING_AUTH_TOKEN", "LIGHTNING_CLOUD_URL"):
        base.pop(var, None)  # the connection is the only source of credentials here
    keys = _secrets(stack_dir)
    api_url = f"http://127.0.0.1:{ports['api']}"
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    bundles = [{"name": "dags-folder", "classpath": local, "kwargs": {"refresh_interval": 5}}]
    for path in extra_dags:
        folder = Path(path).resolve()
        bundles.append({"name": f"extra-{folder.name}", "classpath": local,
                        "kwargs": {"path": str(folder), "refresh_interval": 5}})
    venv_bin = str(Path(sys.executable).parent)
    return {
        **base,
        "PATH": venv_bin + os.pathsep + base.get("PATH", ""),
        "PYTHONUNBUFFERED": "1",
        MARKER: str(stack_dir),
        "AIRFLOW_HOME": str(stack_dir),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # `start` unpauses the unscheduled ones
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(stack_dir / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{stack_dir / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(ports["api"]),
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger_logs"]),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5",
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
    }


# -- start -----------------------------------------------------------------------------------------


def _launch(name: str, argv: list[str], env: dict[str, str], stack_dir: Path) -> dict[str, Any]:
    log = stack_dir / "run" / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, cwd=str(stack_dir), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    (stack_dir / "pids" / f"{name}.pid").write_text(f"{proc.pid}\n")
    return {"pid": proc.pid, "pgid": proc.pid, "start_time": _start_time(proc.pid), "log": str(log),
            "argv": argv}


def _check_alive(state: dict[str, Any]) -> None:
    for name, info in state["processes"].items():
        if not _alive(info["pid"]):
            raise StackError(f"{name} exited during start-up; last lines of {info['log']}:\n{_tail(Path(info['log']))}")


def _start_simulator(stack_dir: Path, env: dict[str, str], port: int, timeout: float) -> tuple[dict[str, Any], str]:
    sim_dir = stack_dir / "simulator"
    (sim_dir / "work").mkdir(parents=True, exist_ok=True)
    argv = [_bin("lightning-simulator"), "--port", str(port), "--pending-seconds", "1",
            "--state-file", str(sim_dir / "state.json"), "--work-dir", str(sim_dir / "work")]
    info = _launch("simulator", argv, env, stack_dir)
    deadline = time.monotonic() + timeout
    prefix = "Lightning simulator listening on "
    while time.monotonic() < deadline:
        for line in Path(info["log"]).read_text(errors="replace").splitlines()[::-1]:
            if line.startswith(prefix):
                return info, line[len(prefix):].strip()
        if not _alive(info["pid"]):
            break
        time.sleep(0.1)
    raise StackError(f"the simulator did not start; last lines of {info['log']}:\n{_tail(Path(info['log']))}")


def token(api_url: str, username: str = USERNAME, password: str = PASSWORD) -> str:
    """A JWT for the REST API from the simple auth manager (``POST /auth/token``)."""
    import httpx

    answer = httpx.post(f"{api_url}/auth/token", json={"username": username, "password": password}, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def client(state: dict[str, Any]) -> Any:
    """An httpx client for the stack's REST API, logged in as the admin user."""
    import httpx

    return httpx.Client(base_url=state["api_url"], timeout=30,
                        headers={"Authorization": f"Bearer {token(state['api_url'])}"})


def health(api_url: str) -> dict[str, Any] | None:
    import httpx

    try:
        answer = httpx.get(f"{api_url}/api/v2/monitor/health", timeout=5)
        return answer.json() if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def is_healthy(report: dict[str, Any] | None) -> bool:
    return report is not None and all((report.get(k) or {}).get("status") == "healthy" for k in HEALTH_KEYS)


def _wait_healthy(state: dict[str, Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    report = None
    while time.monotonic() < deadline:
        _check_alive(state)
        report = health(state["api_url"])
        if is_healthy(report):
            return
        time.sleep(0.5)
    raise StackError(f"not healthy after {timeout:.0f} s: {report}")


def _upsert_connection(api: Any, sim_url: str, sim_info: dict[str, Any]) -> None:
    body = {
        "connection_id": CONN_ID,
        "conn_type": "lightning",
        "description": "The local Lightning simulator of this stack",
        "host": sim_url,
        "login": sim_info.get("userId") or "sim-user",
        "password": SIM_API_KEY,
        "extra": json.dumps({"teamspace": sim_info.get("teamspace") or "sim-org/sim-teamspace"}),
    }
    answer = api.post("/api/v2/connections", json=body)
    if answer.status_code == 409:
        answer = api.patch(f"/api/v2/connections/{CONN_ID}", json=body)
    answer.raise_for_status()


def _wait_dags_and_unpause(api: Any, wait_for: list[str], timeout: float) -> list[str]:
    """Wait until ``wait_for`` are parsed, then unpause every DAG without a schedule; returns the unpaused ids."""
    deadline = time.monotonic() + timeout
    dags: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        dags = api.get("/api/v2/dags", params={"limit": 1000}).json().get("dags", [])
        if set(wait_for) <= {d["dag_id"] for d in dags}:
            break
        time.sleep(0.5)
    else:
        errors = api.get("/api/v2/importErrors").json().get("import_errors", [])
        raise StackError(f"DAGs {sorted(set(wait_for) - {d['dag_id'] for d in dags})} not parsed after "
                         f"{timeout:.0f} s; import errors: {errors}")
    unpaused = []
    for dag in dags:
        if dag.get("timetable_summary") in (None, "", "None") and dag.get("is_paused"):
            api.patch(f"/api/v2/dags/{dag['dag_id']}", json={"is_paused": False}).raise_for_status()
            unpaused.append(dag["dag_id"])
    return unpaused


def running_state(stack_dir: Path) -> dict[str, Any] | None:
    """The recorded state when every recorded process is still the one started (else None)."""
    state = load_state(stack_dir)
    if not state or not state.get("processes"):
        return None
    for info in state["processes"].values():
        if not _alive(info["pid"]) or _start_time(info["pid"]) != info.get("start_time"):
            return None
    return state


def start(stack_dir: Path = DEFAULT_DIR, *, fresh: bool = False, extra_dags: list[str] | None = None,
          api_port: int = 0, timeout: float = 180.0, wait_dags: list[str] | None = None,
          out: Any = sys.stdout) -> dict[str, Any]:
    """Start the stack (or return the running one) and return its state once it is healthy."""
    stack_dir = Path(stack_dir).resolve()
    extra_dags = [str(Path(p).resolve()) for p in (extra_dags or [])]
    began = time.monotonic()
    current = running_state(stack_dir)
    if current and not fresh and current.get("extra_dags", []) == extra_dags and is_healthy(health(current["api_url"])):
        print(f"Airflow stack already running in {stack_dir}", file=out)
        print_summary(current, out)
        return current
    if load_state(stack_dir) or stack_processes(stack_dir):
        stop(stack_dir, out=out)
    if fresh and stack_dir.exists():
        shutil.rmtree(stack_dir)
    for sub in ("run", "pids", "logs"):
        (stack_dir / sub).mkdir(parents=True, exist_ok=True)
    password_file = stack_dir / "passwords.json"
    password_file.write_text(json.dumps({USERNAME: PASSWORD}) + "\n")
    ports = {"api": api_port or free_port(), "worker_logs": free_port(), "trigger_logs": free_port()}
    env = airflow_env(stack_dir, ports, extra_dags)
    airflow = _bin("airflow")
    state: dict[str, Any] = {
        "dir": str(stack_dir), "api_url": f"http://127.0.0.1:{ports['api']}", "ports": ports,
        "username": USERNAME, "password": PASSWORD, "dags_folder": str(DAGS_FOLDER), "extra_dags": extra_dags,
        "started_at": time.time(), "processes": {},
    }
    try:
        print(f"== Airflow stack in {stack_dir}: airflow db migrate", file=out, flush=True)
        with open(stack_dir / "run" / "db-migrate.log", "ab") as log:
            migrate = subprocess.run([airflow, "db", "migrate"], env=env, cwd=str(stack_dir), stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True, timeout=timeout)
        if migrate.returncode != 0:
            raise StackError(f"airflow db migrate failed:\n{_tail(stack_dir / 'run' / 'db-migrate.log')}")
        sim_info, sim_url = _start_simulator(stack_dir, env, 0, 30)
        state["processes"]["simulator"] = sim_info
        state["simulator_url"] = sim_url
        _save_state(stack_dir, state)
        print(f"== simulator at {sim_url}; starting {', '.join(COMPONENTS)}", file=out, flush=True)
        for name in COMPONENTS:
            state["processes"][name] = _launch(name, [airflow, name], env, stack_dir)
        _save_state(stack_dir, state)
        _wait_healthy(state, timeout - (time.monotonic() - began))
        state["healthy_after_s"] = round(time.monotonic() - began, 1)
        import httpx

        sim = httpx.get(f"{sim_url}/__admin/info", timeout=10).json()
        with client(state) as api:
            _upsert_connection(api, sim_url, sim)
            state["unpaused"] = _wait_dags_and_unpause(
                api, wait_dags or ["example_lightning_job"], timeout - (time.monotonic() - began))
        state["ready_after_s"] = round(time.monotonic() - began, 1)
        _save_state(stack_dir, state)
    except BaseException:
        print(f"== start failed; stopping what was started (component logs in {stack_dir / 'run'})",
              file=out, flush=True)
        stop(stack_dir, out=out)
        raise
    print_summary(state, out)
    return state


def print_summary(state: dict[str, Any], out: Any = sys.stdout) -> None:
    print(f"""
Airflow UI:      {state['api_url']}/   (login {state['username']} / {state['password']})
REST API:        {state['api_url']}/api/v2  (token: POST {state['api_url']}/auth/token)
Simulator:       {state.get('simulator_url')}  (admin API: {state.get('simulator_url')}/__admin/jobs)
Connection:      {CONN_ID} -> the simulator (user sim-user, key {SIM_API_KEY}, teamspace sim-org/sim-teamspace)
DAG folder:      {state['dags_folder']}{''.join(f' + {p}' for p in state.get('extra_dags', []))}
Unpaused:        {', '.join(state.get('unpaused', [])) or '-'}
Stack folder:    {state['dir']}  (stack.json, run/<component>.log, logs/ = task logs)
Healthy after:   {state.get('healthy_after_s')} s; DAGs parsed and unpaused after {state.get('ready_after_s')} s
Stop with:       make airflow-stop""", file=out, flush=True)


# -- stop ------------------------------------------------------------------------------------------


def stop(stack_dir: Path = DEFAULT_DIR, *, grace: float = 20.0, out: Any = sys.stdout) -> list[int]:
    """Stop every process of the stack; returns the pids that needed SIGKILL."""
    stack_dir = Path(stack_dir).resolve()
    state = load_state(stack_dir) or {}
    processes = state.get("processes", {})
    # Airflow components first (LocalExecutor workers, task and trigger processes are in their sessions),
    # then the simulator, so that work still shutting down can reach it.
    airflow = [info for name, info in processes.items() if name != "simulator"]
    simulator = [info for name, info in processes.items() if name == "simulator"]
    for batch in (airflow, simulator):
        for info in batch:
            if _members(info):
                try:
                    os.killpg(int(info["pgid"]), signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_members(info) for info in batch):
            time.sleep(0.2)
    killed: list[int] = []
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        left = stack_processes(stack_dir, state)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        if sig == signal.SIGKILL:
            killed = left
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_alive(p) for p in left):
            time.sleep(0.1)
    for info in processes.values():  # reap our own children (when start() ran in this process)
        try:
            os.waitpid(int(info["pid"]), os.WNOHANG)
        except ChildProcessError:
            pass
    remaining = stack_processes(stack_dir, state)
    for pid_file in (stack_dir / "pids").glob("*.pid"):
        pid_file.unlink()
    if state:
        state_path(stack_dir).unlink(missing_ok=True)
    if processes or killed or remaining:
        print(f"== Airflow stack in {stack_dir} stopped ({', '.join(processes) or 'strays only'})"
              + (f"; SIGKILLed {killed}" if killed else "")
              + (f"; STILL RUNNING: {remaining}" if remaining else ""), file=out, flush=True)
    else:
        print(f"== no Airflow stack running in {stack_dir}", file=out, flush=True)
    if remaining:
        raise StackError(f"processes still running after stop: {remaining}")
    return killed


# -- status ----------------------------------------------------------------------------------------


def status(stack_dir: Path = DEFAULT_DIR, out: Any = sys.stdout) -> int:
    stack_dir = Path(stack_dir).resolve()
    state = load_state(stack_dir)
    if not state:
        strays = stack_processes(stack_dir, {})
        print(f"no Airflow stack recorded in {stack_dir}" + (f" (stray processes: {strays})" if strays else ""),
              file=out)
        return 1
    total = 0
    print(f"Airflow stack in {stack_dir}", file=out)
    for name, info in state["processes"].items():
        members = _members(info)
        rss = _rss_kib(members)
        total += rss
        alive = _alive(info["pid"]) and _start_time(info["pid"]) == info.get("start_time")
        print(f"  {name:14} pid {info['pid']:>7}  {'running' if alive else 'DEAD   '}  {len(members):>2} processes  "
              f"{rss / 1024:7.1f} MiB  log {info['log']}", file=out)
    report = health(state["api_url"])
    print(f"  total RSS {total / 1024:.1f} MiB; health: "
          + (", ".join(f"{k} {(report.get(k) or {}).get('status')}" for k in HEALTH_KEYS) if report else "unreachable"),
          file=out)
    print_summary(state, out)
    return 0 if is_healthy(report) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "status", "env"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                       help=f"stack folder (default {DEFAULT_DIR.relative_to(ROOT)})")
        if name == "start":
            p.add_argument("--fresh", action="store_true", help="wipe the stack folder (DB, logs) first")
            p.add_argument("--extra-dags", action="append", default=[], help="another DAG folder (a second bundle)")
            p.add_argument("--wait-dag", action="append", default=[], help="DAG id to wait for before returning")
            p.add_argument("--port", type=int, default=0, help="api-server port (default: a free one)")
            p.add_argument("--timeout", type=float, default=180.0, help="seconds to become healthy")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            start(args.dir, fresh=args.fresh, extra_dags=args.extra_dags, api_port=args.port, timeout=args.timeout,
                  wait_dags=args.wait_dag or None)
            return 0
        if args.command == "stop":
            stop(args.dir)
            return 0
        if args.command == "status":
            return status(args.dir)
        state = running_state(args.dir.resolve())
        if not state:
            print(f"no Airflow stack running in {args.dir}", file=sys.stderr)
            return 1
        env = airflow_env(Path(state["dir"]), state["ports"], state.get("extra_dags", []))
        for key, value in env.items():
            if key.startswith("AIRFLOW") and key != MARKER:  # the marker would make `stop` kill your shell
                print(f"export {key}={_shell_quote(value)}")
        return 0
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


if __name__ == "__main__":
    sys.exit(main())
