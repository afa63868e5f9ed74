"""A real local Airflow 3 stack on 127.0.0.1 plus the Lightning simulator (``make airflow`` / ``make airflow-stop``).

``start`` launches, each in its own process group (session) with its output in ``<dir>/run/<name>.log``:

* ``lightning-simulator`` on a free port (state file and job folders under ``<dir>/simulator``);
* ``airflow api-server`` (UI + REST API + Execution API), ``airflow scheduler`` (LocalExecutor with
  ``parallelism`` 4), ``airflow dag-processor`` and ``airflow triggerer``, all on one SQLite metadata DB.
  Airflow 3 accepts LocalExecutor on SQLite: task processes never open the DB, they talk to the
  Execution API; so deferral runs in the real, separate triggerer process.

``--profile prod`` (``make airflow-prod``) is the production-shaped variant of the same stack:

* ``postgres`` (Debian's PostgreSQL, a scratch cluster in ``<dir>/postgres/data`` run as the unprivileged
  system user ``airflow-pg``, created when missing; 127.0.0.1 only, a free port, no Unix socket, password
  auth) as the metadata DB and Celery's result backend;
* ``redis`` (Debian's redis-server, 127.0.0.1 only, a free port, a password, no persistence) as the broker;
* CeleryExecutor with two ``airflow celery worker`` processes (``worker-1``/``worker-2``, distinct Celery
  hostnames, concurrency 4 each, their own log-server ports) and two triggerers (``triggerer-1``/
  ``triggerer-2``, their own log-server ports), plus api-server, scheduler, dag-processor and the simulator.

Then it waits until ``/api/v2/monitor/health`` reports every component healthy (prod: also both triggerers
registered alive and both Celery workers ready), creates (or updates) the
``lightning_default`` connection in the metadata DB through the REST API so it points at the simulator
and shows in the UI, waits for the DAGs to be parsed and unpauses the ones without a schedule, prints
the UI address and the login and returns. PIDs, ports and URLs are kept in ``<dir>/stack.json`` (and
``<dir>/pids/<name>.pid``). ``stop`` sends SIGTERM to each recorded process group (Airflow first, then the
simulator, then Redis and PostgreSQL, the latter SIGINT: a fast shutdown), then SIGKILL to whatever is
left, including descendants that left their session, any stray process that carries this stack's marker
(``AIRFLOW_STACK_DIR=<dir>`` in its environment) or runs in the simulator's job folder. Both profiles use
the same default folder, so ``stop`` and ``status`` need no ``--profile``.

Usage::

    python scripts/airflow_stack.py start [--dir DIR] [--fresh] [--extra-dags PATH] [--port N] [--profile prod]
    python scripts/airflow_stack.py status [--dir DIR]
    python scripts/airflow_stack.py stop [--dir DIR]
    eval "$(python scripts/airflow_stack.py env)"   # then `airflow dags list` talks to the same stack

Scripts can also kill one component and start it again with the same environment (``kill_component``,
``start_component``, ``restart_component``; ``scripts/chaos_stack.py`` does).

Only the standard library is needed for ``stop``; ``start`` and ``status`` use httpx; ``start --profile prod``
also needs psycopg2 and the Celery provider (requirements-prod.txt) and the Debian packages postgresql and
redis-server (``make airflow-prod`` installs all of them).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pwd
import re
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
PROFILES = ("local", "prod")
# prod: Airflow components -> argv after `airflow` (log-server ports are set per component in start())
PROD_COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer-1": ["triggerer"],
    "triggerer-2": ["triggerer"],
    "worker-1": ["celery", "worker", "--celery-hostname", "worker-1@%h", "--concurrency", "4"],
    "worker-2": ["celery", "worker", "--celery-hostname", "worker-2@%h", "--concurrency", "4"],
}
SERVICES = ("postgres", "redis")  # prod: started before Airflow, stopped after it
SERVICE_USER = "airflow-pg"  # unprivileged system user PostgreSQL (and Redis) run as when this runs as root
PG_USER = "airflow"  # the database role and database Airflow uses
PG_DB = "airflow"


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
    members = _session_members(pid)
    if _alive(pid):  # plus children that left the session (PostgreSQL's backends each call setsid())
        members = sorted(set(members) | _descendants(pid))
    return members


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for other in _all_pids():
        fields = _proc_stat(other)
        if fields and len(fields) > 1 and fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(other)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


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


def _service_secrets(stack_dir: Path) -> dict[str, str]:
    """The PostgreSQL and Redis passwords of the prod profile, added to ``secrets.json`` on first use."""
    values = _secrets(stack_dir)
    if "pg_password" not in values or "redis_password" not in values:
        values = {**values, "pg_password": secrets.token_hex(16), "redis_password": secrets.token_hex(16)}
        path = stack_dir / "secrets.json"
        path.write_text(json.dumps(values) + "\n")
        path.chmod(0o600)
    return values


def sql_alchemy_conn(stack_dir: Path, ports: dict[str, int], profile: str = "local") -> str:
    """The metadata DB's SQLAlchemy URL (prod: PostgreSQL through psycopg2, password included)."""
    if profile == "prod":
        password = _service_secrets(stack_dir)["pg_password"]
        return f"postgresql+psycopg2://{PG_USER}:{password}@127.0.0.1:{ports['postgres']}/{PG_DB}"
    return f"sqlite:///{stack_dir / 'airflow.db'}"


def airflow_env(stack_dir: Path, ports: dict[str, int], extra_dags: list[str],
                profile: str = "local") -> dict[str, str]:
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
    env = {
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
    if profile == "prod":
        redis_password = _service_secrets(stack_dir)["redis_password"]
        db_url = sql_alchemy_conn(stack_dir, ports, profile)
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",  # two workers, concurrency 4 each
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://:{redis_password}@127.0.0.1:{ports['redis']}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db_url,  # driver named: SQLAlchemy 2.1 defaults to psycopg 3
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            # the api-server fetches logs of running tasks from here (worker-1's log server; every worker and
            # triggerer of this stack writes to the same <dir>/logs, so any of them can serve any file)
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_logs"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger_logs"]),
        })
    return env


def _component_env(env: dict[str, str], name: str, ports: dict[str, int]) -> dict[str, str]:
    """prod: each Celery worker and triggerer serves its logs on a port of its own (they share a host)."""
    if name.startswith("worker-"):
        return {**env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports[f"{name}_logs"])}
    if name.startswith("triggerer-"):
        return {**env, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports[f"{name}_logs"])}
    return env


# -- start -----------------------------------------------------------------------------------------


def _launch(name: str, argv: list[str], env: dict[str, str], stack_dir: Path,
            user: str | None = None) -> dict[str, Any]:
    log = stack_dir / "run" / f"{name}.log"
    as_user: dict[str, Any] = {"user": user, "group": user, "extra_groups": []} if user else {}
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, cwd=str(stack_dir), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, **as_user)
    (stack_dir / "pids" / f"{name}.pid").write_text(f"{proc.pid}\n")
    info = {"pid": proc.pid, "pgid": proc.pid, "start_time": _start_time(proc.pid), "log": str(log),
            "argv": argv}
    if user:
        info["user"] = user
    return info


def _check_alive(state: dict[str, Any]) -> None:
    for name, info in state["processes"].items():
        if not _alive(info["pid"]):
            raise StackError(f"{name} exited during start-up; last lines of {info['log']}:\n{_tail(Path(info['log']))}")


def _start_simulator(stack_dir: Path, env: dict[str, str], port: int, timeout: float) -> tuple[dict[str, Any], str]:
    sim_dir = stack_dir / "simulator"
    (sim_dir / "work").mkdir(parents=True, exist_ok=True)
    argv = [_bin("lightning-simulator"), "--port", str(port), "--pending-seconds", "1",
            "--state-file", str(sim_dir / "state.json"), "--work-dir", str(sim_dir / "work")]
    offset = _log_size(stack_dir / "run" / "simulator.log")  # the log is appended to: skip earlier starts
    info = _launch("simulator", argv, env, stack_dir)
    deadline = time.monotonic() + timeout
    prefix = "Lightning simulator listening on "
    while time.monotonic() < deadline:
        with open(info["log"], "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        for line in text.splitlines()[::-1]:
            if line.startswith(prefix):
                return info, line[len(prefix):].strip()
        if not _alive(info["pid"]):
            break
        time.sleep(0.1)
    raise StackError(f"the simulator did not start; last lines of {info['log']}:\n{_tail(Path(info['log']))}")


# -- prod profile: PostgreSQL and Redis -------------------------------------------------------------


def _pg_bin() -> Path:
    """The bin folder of the newest Debian PostgreSQL (``/usr/lib/postgresql/<major>/bin``)."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    found.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    if not found:
        raise StackError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): "
                         "`make airflow-prod` installs Debian's postgresql")
    return found[-1]


def _service_user() -> str | None:
    """The user PostgreSQL and Redis run as: ``airflow-pg`` (a system user, created when missing) if this
    runs as root (PostgreSQL refuses root), else None: the current, already unprivileged, user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
        return SERVICE_USER
    except KeyError:
        pass
    made = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                           "--shell", "/usr/sbin/nologin", "--comment", "PostgreSQL and Redis of the local Airflow",
                           SERVICE_USER], capture_output=True, text=True)
    if made.returncode != 0:
        raise StackError(f"could not create the system user {SERVICE_USER}: {made.stderr.strip()}")
    return SERVICE_USER


def _chown(path: Path, user: str | None) -> None:
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _check_reachable(folder: Path, user: str | None) -> None:
    """The service user must be able to walk down to ``folder`` (e.g. not under a 0700 home folder)."""
    if not user:
        return
    uid = pwd.getpwnam(user).pw_uid
    for parent in reversed([folder, *folder.parents]):
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            raise StackError(f"the service user {user} cannot enter {parent} (mode {oct(st.st_mode & 0o777)}): "
                             f"use a --dir whose parent folders others may enter")


def _service_env(stack_dir: Path) -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "TZ": "UTC", MARKER: str(stack_dir)}


def _pg_connect(port: int, password: str, dbname: str = "postgres") -> Any:
    import psycopg2

    return psycopg2.connect(host="127.0.0.1", port=port, user=PG_USER, password=password, dbname=dbname,
                            connect_timeout=3)


def _start_postgres(stack_dir: Path, port: int, user: str | None, timeout: float) -> dict[str, Any]:
    """A scratch cluster in ``<dir>/postgres/data`` (made with initdb on first use), 127.0.0.1:``port`` only."""
    try:
        import psycopg2
    except ImportError as error:
        raise StackError("psycopg2 is missing: `make airflow-prod` installs requirements-prod.txt") from error
    bin_dir = _pg_bin()
    pg_dir = stack_dir / "postgres"
    data = pg_dir / "data"
    password = _service_secrets(stack_dir)["pg_password"]
    pg_dir.mkdir(exist_ok=True)
    _check_reachable(pg_dir, user)
    as_user: dict[str, Any] = {"user": user, "group": user, "extra_groups": []} if user else {}
    if not (data / "PG_VERSION").exists():
        if data.exists():
            shutil.rmtree(data)  # a cluster whose initdb did not finish
        data.mkdir(mode=0o700)
        _chown(data, user)
        pwfile = pg_dir / "initdb-password"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        _chown(pwfile, user)
        try:
            with open(stack_dir / "run" / "postgres-initdb.log", "ab") as log:
                made = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
                                       "--auth=scram-sha-256", "-E", "UTF8", "--no-locale"],
                                      env=_service_env(stack_dir), cwd=str(pg_dir), stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout, **as_user)
        finally:
            pwfile.unlink(missing_ok=True)
        if made.returncode != 0:
            raise StackError(f"initdb failed:\n{_tail(stack_dir / 'run' / 'postgres-initdb.log')}")
        with open(data / "postgresql.conf", "a") as conf:
            conf.write("\n# airflow_stack.py (prod profile): TCP on loopback only, no Unix socket\n"
                       "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 200\n")
    info = _launch("postgres", [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port)],
                   _service_env(stack_dir), stack_dir, user)
    info["stop_signal"] = "SIGINT"  # fast shutdown (SIGTERM would wait for every client to disconnect)
    deadline = time.monotonic() + timeout
    while True:
        try:
            db = _pg_connect(port, password)
            break
        except psycopg2.OperationalError as error:
            if not _alive(info["pid"]) or time.monotonic() > deadline:
                raise StackError(f"PostgreSQL did not start ({str(error).strip()}); "
                                 f"last lines of {info['log']}:\n{_tail(Path(info['log']))}") from error
            time.sleep(0.2)
    try:
        db.autocommit = True
        with db.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{PG_DB}"')
    finally:
        db.close()
    return info


def _redis_ping(port: int, password: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            while b"PONG" not in reply and b"-" not in reply[:1] and len(reply) < 200:
                chunk = conn.recv(200)
                if not chunk:
                    break
                reply += chunk
            return b"+PONG" in reply
    except OSError:
        return False


def _start_redis(stack_dir: Path, port: int, user: str | None, timeout: float) -> dict[str, Any]:
    """Debian's redis-server, 127.0.0.1:``port`` only, a password, nothing written to disk."""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(server).exists():
        raise StackError("redis-server is not installed: `make airflow-prod` installs Debian's redis-server")
    redis_dir = stack_dir / "redis"
    redis_dir.mkdir(exist_ok=True)
    _chown(redis_dir, user)
    password = _service_secrets(stack_dir)["redis_password"]
    conf = redis_dir / "redis.conf"  # the password stays out of the command line
    conf.write_text(f"bind 127.0.0.1\nport {port}\nprotected-mode yes\nrequirepass {password}\n"
                    f"save \"\"\nappendonly no\ndaemonize no\nlogfile \"\"\ndir {redis_dir}\n")
    conf.chmod(0o600)
    _chown(conf, user)
    info = _launch("redis", [server, str(conf)], _service_env(stack_dir), stack_dir, user)
    deadline = time.monotonic() + timeout
    while not _redis_ping(port, password):
        if not _alive(info["pid"]) or time.monotonic() > deadline:
            raise StackError(f"Redis did not start; last lines of {info['log']}:\n{_tail(Path(info['log']))}")
        time.sleep(0.1)
    return info


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _wait_prod_ready(state: dict[str, Any], api: Any, log_offsets: dict[str, int], timeout: float) -> None:
    """Both Celery workers logged ``ready.`` and both triggerers are registered alive (``/api/v2/jobs``)."""
    from datetime import datetime

    deadline = time.monotonic() + timeout
    workers = [name for name in state["processes"] if name.startswith("worker-")]
    triggerers = [name for name in state["processes"] if name.startswith("triggerer-")]
    ready: set[str] = set()
    alive: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        _check_alive(state)
        for name in workers:
            if name not in ready:
                with open(state["processes"][name]["log"], "rb") as log:
                    log.seek(log_offsets.get(name, 0))
                    if re.search(rb"\b" + re.escape(name.encode()) + rb"@\S+ ready\.", log.read()):
                        ready.add(name)
        jobs = api.get("/api/v2/jobs", params={"job_type": "TriggererJob", "job_state": "running", "is_alive": True,
                                               "limit": 100}).json().get("jobs", [])
        since = state["started_at"]  # not a job left behind by an earlier start
        alive = [job for job in jobs if job.get("start_date")
                 and datetime.fromisoformat(job["start_date"].replace("Z", "+00:00")).timestamp() >= since]
        if len(ready) == len(workers) and len(alive) >= len(triggerers):
            state["celery_workers_ready"] = sorted(ready)
            state["triggerer_jobs"] = sorted(job["id"] for job in alive)
            return
        time.sleep(0.5)
    raise StackError(f"not ready after {timeout:.0f} s: Celery workers ready {sorted(ready)} of {workers}, "
                     f"{len(alive)} of {len(triggerers)} triggerers alive")


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


def _heartbeats_since(report: dict[str, Any], since: float) -> bool:
    """Every component's latest heartbeat is newer than ``since`` (the DB may hold the previous start's)."""
    from datetime import datetime

    for key in HEALTH_KEYS[1:]:
        beat = next((v for k, v in (report.get(key) or {}).items() if k.startswith("latest_") and v), None)
        if not beat or datetime.fromisoformat(str(beat).replace("Z", "+00:00")).timestamp() < since:
            return False
    return True


def _wait_healthy(state: dict[str, Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    report = None
    while time.monotonic() < deadline:
        _check_alive(state)
        report = health(state["api_url"])
        if is_healthy(report) and _heartbeats_since(report, state["started_at"]):
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
          out: Any = sys.stdout, profile: str = "local", extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start the stack (or return the running one) and return its state once it is healthy.

    ``profile="prod"``: PostgreSQL, Redis, CeleryExecutor with two workers and two triggerers (module docstring).
    ``extra_env``: variables added to every Airflow component's environment (e.g. ``AIRFLOW__SCHEDULER__...``
    settings), kept in ``stack.json`` so that :func:`start_component` restarts a component with them.
    """
    if profile not in PROFILES:
        raise StackError(f"unknown profile {profile!r} (one of {', '.join(PROFILES)})")
    stack_dir = Path(stack_dir).resolve()
    extra_dags = [str(Path(p).resolve()) for p in (extra_dags or [])]
    began = time.monotonic()
    current = running_state(stack_dir)
    if (current and not fresh and current.get("extra_dags", []) == extra_dags
            and current.get("profile", "local") == profile and current.get("extra_env", {}) == (extra_env or {})
            and is_healthy(health(current["api_url"]))):
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
    if profile == "prod":
        ports.update({"postgres": free_port(), "redis": free_port(),
                      "worker-1_logs": ports["worker_logs"], "worker-2_logs": free_port(),
                      "triggerer-1_logs": ports["trigger_logs"], "triggerer-2_logs": free_port()})
    env = {**airflow_env(stack_dir, ports, extra_dags, profile), **(extra_env or {})}
    airflow = _bin("airflow")
    state: dict[str, Any] = {
        "dir": str(stack_dir), "api_url": f"http://127.0.0.1:{ports['api']}", "ports": ports,
        "username": USERNAME, "password": PASSWORD, "dags_folder": str(DAGS_FOLDER), "extra_dags": extra_dags,
        "started_at": time.time(), "processes": {},
    }
    if profile == "prod":
        state["profile"] = profile
    if extra_env:
        state["extra_env"] = dict(extra_env)
    try:
        if profile == "prod":
            user = _service_user()
            print(f"== Airflow stack (prod) in {stack_dir}: PostgreSQL on 127.0.0.1:{ports['postgres']}, "
                  f"Redis on 127.0.0.1:{ports['redis']} (as {user or 'the current user'})", file=out, flush=True)
            state["processes"]["postgres"] = _start_postgres(stack_dir, ports["postgres"], user, 60)
            _save_state(stack_dir, state)
            state["processes"]["redis"] = _start_redis(stack_dir, ports["redis"], user, 30)
            _save_state(stack_dir, state)
            state["services_after_s"] = round(time.monotonic() - began, 1)
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
        components = {name: [name] for name in COMPONENTS} if profile == "local" else PROD_COMPONENTS
        print(f"== simulator at {sim_url}; starting {', '.join(components)}", file=out, flush=True)
        log_offsets = {name: _log_size(stack_dir / "run" / f"{name}.log") for name in components}
        for name, args in components.items():
            state["processes"][name] = _launch(name, [airflow, *args], _component_env(env, name, ports), stack_dir)
        _save_state(stack_dir, state)
        _wait_healthy(state, timeout - (time.monotonic() - began))
        state["healthy_after_s"] = round(time.monotonic() - began, 1)
        import httpx

        sim = httpx.get(f"{sim_url}/__admin/info", timeout=10).json()
        with client(state) as api:
            if profile == "prod":
                _wait_prod_ready(state, api, log_offsets, timeout - (time.monotonic() - began))
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
    if state.get("profile") == "prod":
        ports = state["ports"]
        runs_as = state["processes"].get("postgres", {}).get("user", "the current user")
        print(f"""
Profile:         prod: CeleryExecutor, 2 Celery workers (concurrency 4 each), 2 triggerers
PostgreSQL:      127.0.0.1:{ports['postgres']}  (database {PG_DB}, user {PG_USER}, password in secrets.json;
                 data in {state['dir']}/postgres/data, run as {runs_as})
Redis (broker):  127.0.0.1:{ports['redis']}  (password in secrets.json, no persistence)""", file=out, flush=True)
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


# -- one component: kill, start again ---------------------------------------------------------------


def component_env(state: dict[str, Any], name: str) -> dict[str, str]:
    """The environment the Airflow component ``name`` of a recorded stack runs with (``extra_env`` included)."""
    stack_dir = Path(state["dir"])
    env = {**airflow_env(stack_dir, state["ports"], state.get("extra_dags", []), state.get("profile", "local")),
           **state.get("extra_env", {})}
    return _component_env(env, name, state["ports"])


def component_pids(state: dict[str, Any], name: str) -> set[int]:
    """Live processes of one recorded component: its session plus every descendant (task processes too)."""
    info = state.get("processes", {}).get(name)
    if info is None:
        return set()
    pids = set(_members(info))
    for pid in list(pids):
        pids |= _descendants(pid)
    return pids - _ancestors()


def kill_component(stack_dir: Path, name: str, sig: int = signal.SIGKILL, grace: float = 30.0) -> list[int]:
    """Send ``sig`` to every process of one recorded component (its session and all its descendants, e.g. the
    triggerer's trigger runner or a Celery worker's task processes), at once; returns the pids signalled.

    Anything but SIGKILL: whatever is still alive after ``grace`` seconds gets SIGKILL. The component stays in
    ``stack.json`` (``stop`` finds nothing left of it); :func:`start_component` starts it again.
    """
    stack_dir = Path(stack_dir).resolve()
    state = load_state(stack_dir) or {}
    info = state.get("processes", {}).get(name)
    if info is None:
        raise StackError(f"no component {name!r} recorded in {stack_dir}")
    leader = int(info["pid"])
    pids = component_pids(state, name)  # all collected before any signal: orphans would be re-parented away
    for pid in sorted(pids):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + (2.0 if sig == signal.SIGKILL else grace)
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:  # reap the leader when this process started it
        os.waitpid(leader, os.WNOHANG)
    except ChildProcessError:
        pass
    return sorted(pids)


def start_component(stack_dir: Path, name: str) -> dict[str, Any]:
    """Start one Airflow component of a recorded stack again (same argv, same environment), e.g. after
    :func:`kill_component`; records its new pid in ``stack.json`` and returns that record."""
    stack_dir = Path(stack_dir).resolve()
    state = load_state(stack_dir)
    if not state or name not in state.get("processes", {}):
        raise StackError(f"no component {name!r} recorded in {stack_dir}")
    if name in SERVICES or name == "simulator":
        raise StackError(f"{name} is not an Airflow component (only those can be started again)")
    old = state["processes"][name]
    if _members(old):
        raise StackError(f"{name} is still running (pid {old['pid']}): kill it first")
    info = _launch(name, list(old["argv"]), component_env(state, name), stack_dir)
    state["processes"][name] = info
    _save_state(stack_dir, state)
    return info


def restart_component(stack_dir: Path, name: str, sig: int = signal.SIGTERM,
                      grace: float = 30.0) -> tuple[list[int], dict[str, Any]]:
    """Stop one Airflow component (``sig``, then SIGKILL after ``grace`` s) and start it again with the same
    environment; returns the pids stopped and the new record."""
    stopped = kill_component(stack_dir, name, sig, grace)
    return stopped, start_component(stack_dir, name)


# -- stop ------------------------------------------------------------------------------------------


def stop(stack_dir: Path = DEFAULT_DIR, *, grace: float = 20.0, out: Any = sys.stdout) -> list[int]:
    """Stop every process of the stack; returns the pids that needed SIGKILL."""
    stack_dir = Path(stack_dir).resolve()
    state = load_state(stack_dir) or {}
    processes = state.get("processes", {})
    # Airflow components first (LocalExecutor workers, task and trigger processes are in their sessions),
    # then the simulator, so that work still shutting down can reach it.
    # prod: PostgreSQL and Redis last, once nothing uses them any more.
    airflow = [info for name, info in processes.items() if name != "simulator" and name not in SERVICES]
    simulator = [info for name, info in processes.items() if name == "simulator"]
    services = [info for name, info in processes.items() if name in SERVICES]
    for batch in (airflow, simulator, services):
        for info in batch:
            if _members(info):
                try:
                    os.killpg(int(info["pgid"]), getattr(signal, info.get("stop_signal", "SIGTERM")))
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
    print(f"Airflow stack in {stack_dir}" + (" (profile prod)" if state.get("profile") == "prod" else ""), file=out)
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
    if state.get("profile") == "prod" and report:
        try:
            with client(state) as api:
                jobs = api.get("/api/v2/jobs", params={"job_type": "TriggererJob", "job_state": "running",
                                                       "is_alive": True, "limit": 100}).json().get("jobs", [])
            print(f"  triggerer jobs alive (REST API): {len(jobs)} ({', '.join(str(j['id']) for j in jobs)})", file=out)
        except Exception as error:  # status only informs
            print(f"  triggerer jobs: could not ask the REST API ({error})", file=out)
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
            p.add_argument("--profile", choices=PROFILES, default="local",
                           help="local: SQLite + LocalExecutor (default); prod: PostgreSQL, Redis, CeleryExecutor "
                                "with two workers, two triggerers")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            start(args.dir, fresh=args.fresh, extra_dags=args.extra_dags, api_port=args.port, timeout=args.timeout,
                  wait_dags=args.wait_dag or None, profile=args.profile)
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
        env = {**airflow_env(Path(state["dir"]), state["ports"], state.get("extra_dags", []),
                             state.get("profile", "local")), **state.get("extra_env", {})}
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
