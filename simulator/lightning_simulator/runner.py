"""Command execution for jobs: build the argv like a container would, run it in its own
process group, stream its output line by line, and kill the whole group on stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Inherited variables that belong to the caller's Lightning session, not to a job's container.
_STRIPPED_ENV_PREFIXES = ("LIGHTNING_", "GRID_")


def image_job_argv(entrypoint: str, command: str) -> list[str] | None:
    """The argv a container runtime would execute for ``spec.entrypoint`` + ``spec.command``.

    * no entrypoint, a command: ``sh -c <command>`` (what ``Job.run`` means by default);
    * an entrypoint ending in ``-c`` (``sh -c``, ``bash -lc``): the command is one argument;
    * any other entrypoint: entrypoint words followed by the command's words;
    * neither: ``None`` (the image's own default command, which the simulator cannot run).
    """
    entry = shlex.split(entrypoint) if entrypoint.strip() else []
    if not entry:
        return ["sh", "-c", command] if command.strip() else None
    if entry[-1].startswith("-") and entry[-1].endswith("c") and len(entry) >= 2:
        return [*entry, command] if command else entry
    return [*entry, *(shlex.split(command) if command.strip() else [])]


def studio_job_argv(command: str) -> list[str]:
    """Studio jobs run their command as a bash script with ``set -e``."""
    shell = shutil.which("bash") or "sh"
    return [shell, "-c", f"set -e\n{command}"]


def job_environment(
    extra: Mapping[str, str], shim_dir: Path | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The process environment: the simulator's own (less Lightning credentials) plus ``extra``."""
    env = {
        k: v for k, v in (base if base is not None else os.environ).items() if not k.startswith(_STRIPPED_ENV_PREFIXES)
    }
    env["PYTHONUNBUFFERED"] = "1"
    if shim_dir is not None:
        env["PATH"] = f"{shim_dir}{os.pathsep}{env.get('PATH', os.defpath)}"
    env.update(extra)
    return env


def make_python_shim(directory: Path) -> Path | None:
    """If no ``python`` is on PATH, write a ``python``/``python3`` shim running this interpreter."""
    if shutil.which("python") and shutil.which("python3"):
        return None
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        target = directory / name
        target.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        target.chmod(0o755)
    return directory


@dataclass
class RunHandle:
    """A running job command."""

    job_id: str
    process: subprocess.Popen[bytes]
    reader: threading.Thread | None = None
    waiter: threading.Thread | None = None
    kill_reason: str | None = None
    killed_at: float | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        """The process id (also the process-group id)."""
        return self.process.pid

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the job's whole process group (ignored once it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


def group_alive(pgid: int) -> bool:
    """True while process group ``pgid`` has a process that is not a zombie.

    Orphaned zombies are reaped by PID 1 on its own schedule, so they do not count.
    Uses ``/proc`` on Linux and falls back to ``killpg(pgid, 0)`` elsewhere.
    """
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    """Poll until no live process is left in process group ``pgid``."""
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


LineCallback = Callable[[str, str], None]
ExitCallback = Callable[[str, int, "str | None"], None]


class CommandRunner:
    """Starts job commands and reports their output lines and exit codes through callbacks.

    ``on_line(job_id, text)`` is called for every output line as it is produced;
    ``on_exit(job_id, returncode, kill_reason)`` once the process (and its output) ended.
    """

    def __init__(self, on_line: LineCallback, on_exit: ExitCallback, kill_grace: float = 1.0) -> None:
        self._on_line = on_line
        self._on_exit = on_exit
        self.kill_grace = kill_grace
        self._handles: dict[str, RunHandle] = {}
        self._lock = threading.Lock()

    def start(self, job_id: str, argv: list[str], cwd: Path, env: dict[str, str]) -> RunHandle:
        """Spawn ``argv`` in a new session (its own process group); raises ``OSError`` if it cannot start."""
        proc = subprocess.Popen(
            argv,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        handle = RunHandle(job_id=job_id, process=proc)
        handle.reader = threading.Thread(target=self._read, args=(handle,), name=f"sim-read-{job_id}", daemon=True)
        handle.waiter = threading.Thread(target=self._wait, args=(handle,), name=f"sim-wait-{job_id}", daemon=True)
        with self._lock:
            self._handles[job_id] = handle
        handle.reader.start()
        handle.waiter.start()
        return handle

    def get(self, job_id: str) -> RunHandle | None:
        """The live handle of a job, if its command is still running."""
        with self._lock:
            return self._handles.get(job_id)

    def running(self) -> list[RunHandle]:
        """All live handles."""
        with self._lock:
            return list(self._handles.values())

    def terminate(self, job_id: str, reason: str, grace: float | None = None) -> bool:
        """SIGTERM the job's process group, then SIGKILL after ``grace`` seconds. False if not running."""
        handle = self.get(job_id)
        if handle is None:
            return False
        if handle.kill_reason is None:
            handle.kill_reason = reason
        handle.killed_at = time.time()
        wait = self.kill_grace if grace is None else grace
        if wait <= 0:
            handle.signal_group(signal.SIGKILL)
            return True
        handle.signal_group(signal.SIGTERM)

        def _escalate() -> None:
            if not handle.done.wait(wait):
                handle.signal_group(signal.SIGKILL)

        threading.Thread(target=_escalate, name=f"sim-kill-{job_id}", daemon=True).start()
        return True

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every running job group and wait (bounded) for their bookkeeping to finish."""
        handles = self.running()
        for handle in handles:
            if handle.kill_reason is None:
                handle.kill_reason = "shutdown"
            handle.signal_group(signal.SIGKILL)
        deadline = time.time() + timeout
        for handle in handles:
            handle.done.wait(max(0.0, deadline - time.time()))

    def _read(self, handle: RunHandle) -> None:
        stream = handle.process.stdout
        assert stream is not None
        try:
            for raw in iter(stream.readline, b""):
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                try:
                    self._on_line(handle.job_id, text)
                except Exception:
                    log.exception("simulator log callback failed")
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                stream.close()

    def _wait(self, handle: RunHandle) -> None:
        code = handle.process.wait()
        # Like a container whose main process ended: nothing else of the job survives it.
        handle.signal_group(signal.SIGKILL)
        _wait_group_gone(handle.pid, timeout=2.0)
        if handle.reader is not None:
            handle.reader.join(timeout=5)
        with self._lock:
            self._handles.pop(handle.job_id, None)
        try:
            self._on_exit(handle.job_id, code, handle.kill_reason)
        except Exception:
            log.exception("simulator exit callback failed")
        finally:
            handle.done.set()
