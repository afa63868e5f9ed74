"""The job state machine: timers and command exits move jobs through their states (reference section 14)::

    create -> pending --(pending_seconds)--> running --exit 0--> completed
                                                     \\-exit!=0 / time limit--> failed
    PUT {"state": "stop"} -> stop --(stop_seconds)--> stopping (process group killed) -> stopped

Commands run for real (:mod:`.runner`) in a scratch folder, a copy of the Studio's folder for Studio jobs;
timed jobs (``timed_jobs``) run none and end on a timer. ``LIGHTNING_ARTIFACTS_DIR`` is the job's artifacts
folder, created before the command starts: ``jobs/<name>`` of the drive for Studio jobs, the
``artifactsDestination`` folder for image jobs that name one, else a scratch folder outside the drive (see
:mod:`.drive`). A leading ``/teamspace`` in the command, the entrypoint and literal env values is rewritten to
the teamspace's drive folder, also given as ``LIGHTNING_TEAMSPACE_DIR``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .context import ServiceContext
from .drive import DriveService, mount_teamspace
from .jobrecord import STOPPING_STATES, TERMINAL_STATES, Job
from .runner import CommandRunner, image_job_argv, job_environment, make_python_shim, studio_job_argv
from .studios import StudioService
from .wire import ApiError, now_ns


class JobLifecycle:
    """Moves jobs from pending to their end on timers and command exits, running their commands for real."""

    def __init__(
        self, context: ServiceContext, studios: StudioService, jobs: dict[str, Job], touch: Callable[[Job], None]
    ) -> None:
        """Drive the jobs in ``jobs``.

        :param context: the shared lock, settings and timers.
        :param studios: where Studio jobs copy their files from.
        :param jobs: the job records by id (owned by :class:`~.jobs.JobService`).
        :param touch: marks a job changed (and tells whoever follows jobs).
        """
        self.context = context
        self.lock = context.lock
        self.config = context.config
        self.scheduler = context.scheduler
        self.work_dir = context.work_dir
        self.studios = studios
        self.jobs = jobs
        self._touch = touch
        self._environments: list[Callable[[Job], dict[str, str]]] = []
        # ``(project id, secret name) -> value or None``: what ``{"name", "fromSecret"}`` env entries get
        self.secret_value: Callable[[str, str], str | None] = lambda project_id, name: None
        self.drive: DriveService | None = None  # the teamspace drive: artifacts folders and the /teamspace mount
        self.runner = CommandRunner(self._on_line, self._on_exit, kill_grace=self.config.kill_grace)
        self._shim_dir = make_python_shim(self.work_dir / "bin")
        (self.work_dir / "jobs").mkdir(parents=True, exist_ok=True)

    def add_environment(self, extra: Callable[[Job], dict[str, str]]) -> None:
        """Add variables to the environment of every job command (``extra(job)``, called under the lock)."""
        self._environments.append(extra)

    def schedule_start(self, job: Job) -> None:
        """Start a new pending job after ``pending_seconds``."""
        self.scheduler.call_later(self.config.pending_seconds, self._start, job.id)

    def request_stop(self, job: Job) -> None:
        """Ask a job to stop: ``stop``, then ``stopping`` after ``stop_seconds`` (its command is killed)."""
        if job.state in TERMINAL_STATES or job.state in STOPPING_STATES:
            return  # stopping a finished (or already stopping) job changes nothing
        job.state = "stop"
        self._touch(job)
        self.scheduler.call_later(self.config.stop_seconds, self._begin_stopping, job.id)

    def _start(self, job_id: str) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state != "pending":
                return
            secret_env = self._secret_environment(job)
            if secret_env is None:
                return
            job.state = "running"
            job.started_ns = now_ns()
            self._touch(job)
            if job.timed is not None:
                duration, code = job.timed
                limit = self.config.job_time_limit
                job.logs.append(f"[simulator] timed job: runs {duration:g}s and exits with code {code}", job.started_ns)
                self.scheduler.call_later(min(duration, limit), self._finish_timed, job.id, duration > limit)
                return
            launch = self._launch_plan(job, secret_env)
        if launch is None:
            self._on_exit(job_id, 0, None)
            return
        argv, cwd, env = launch
        try:
            handle = self.runner.start(job_id, argv, cwd, env)
        except OSError as exc:
            with self.lock:
                job = self.jobs.get(job_id)
                if job is not None and job.state not in TERMINAL_STATES:
                    job.logs.append(f"[simulator] could not start {argv[0]!r}: {exc}", now_ns())
                    self._fail(job, f"Job failed: could not start the command: {exc}")
            return
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state == "stopping":
                self.runner.terminate(job_id, "deleted" if job is None else "stop")
        self.scheduler.call_later(self.config.job_time_limit, self._time_limit, job_id, handle.pid)

    def _secret_environment(self, job: Job) -> dict[str, str] | None:
        """The values of the job's ``fromSecret`` env entries; ``None`` (the job failed) if a secret is missing."""
        values: dict[str, str] = {}
        for item in job.spec.get("env", []):
            secret = item.get("fromSecret", "")
            if not secret:
                continue
            value = self.secret_value(job.project_id, secret)
            if value is None:
                message = (
                    f"Job failed: environment variable {item['name']!r} references secret {secret!r}, "
                    "which does not exist in this teamspace"
                )
                job.logs.append(f"[simulator] {message}", now_ns())
                self._fail(job, message)
                return None
            values[item["name"]] = value
        return values

    def _launch_plan(self, job: Job, secret_env: dict[str, str]) -> tuple[list[str], Path, dict[str, str]] | None:
        """argv, working directory and environment of a job (called under the lock)."""
        scratch = self.work_dir / "jobs" / job.id
        drive_env = self._drive_environment(job)
        if drive_env is None:
            return None  # the job failed
        teamspace = drive_env.get("LIGHTNING_TEAMSPACE_DIR", "")

        def mount(text: str) -> str:
            return mount_teamspace(text, teamspace) if teamspace else text

        env = {
            "LIGHTNING_JOB_ID": job.id,
            "LIGHTNING_JOB_NAME": job.name,
            "LIGHTNING_CLOUD_PROJECT_ID": job.project_id,
        }
        env.update({name: mount(value) for name, value in job.env.items()})  # literal values only
        env.update(secret_env)
        for extra in self._environments:  # e.g. what a multi-machine job injects into its machines
            env.update(extra(job))
        env.update(drive_env)
        command = mount(job.spec.get("command", ""))
        studio_id = job.spec.get("cloudspaceId", "")
        if studio_id:
            studio = self.studios.records.get(studio_id)
            source = self.studios.studio_dir(studio_id)
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
            if source.is_dir():
                shutil.copytree(source, scratch, symlinks=True)
            else:
                scratch.mkdir(parents=True, exist_ok=True)
            env["LIGHTNING_CLOUD_SPACE_ID"] = studio_id
            if studio is not None:
                env.setdefault("LIGHTNING_STUDIO_NAME", studio.name)
            argv = studio_job_argv(command)
        else:
            scratch.mkdir(parents=True, exist_ok=True)
            maybe_argv = image_job_argv(mount(job.spec.get("entrypoint", "")), command)
            if maybe_argv is None:
                job.logs.append(
                    f"[simulator] image {job.spec.get('image', '')!r} has no command; its default "
                    "command is not simulated, finishing successfully",
                    now_ns(),
                )
                return None
            argv = maybe_argv
        return argv, scratch, job_environment(env, self._shim_dir)

    def _drive_environment(self, job: Job) -> dict[str, str] | None:
        """``LIGHTNING_ARTIFACTS_DIR`` (created) and ``LIGHTNING_TEAMSPACE_DIR``; ``None`` (the job failed) when the
        artifacts folder cannot be made (called under the lock)."""
        if self.drive is None:
            return {}
        try:
            teamspace = self.drive.teamspace_dir(job.project_id)
            artifacts = self.drive.job_artifacts_dir(job.project_id, job.spec, job.name)
            if artifacts is None:  # an image job without artifactsDestination: nothing is kept
                artifacts = self.work_dir / "artifacts" / job.id
            artifacts.mkdir(parents=True, exist_ok=True)
        except (ApiError, OSError) as exc:
            reason = exc.message if isinstance(exc, ApiError) else str(exc)
            message = f"Job failed: could not create its artifacts folder: {reason}"
            job.logs.append(f"[simulator] {message}", now_ns())
            self._fail(job, message)
            return None
        return {"LIGHTNING_ARTIFACTS_DIR": str(artifacts), "LIGHTNING_TEAMSPACE_DIR": str(teamspace)}

    def _fail(self, job: Job, message: str) -> None:
        job.state = "failed"
        job.message = message
        job.server_error = message
        job.stopped_ns = now_ns()
        self._touch(job)

    def _on_line(self, job_id: str, text: str) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is not None:
                job.logs.append(text, now_ns())
                self.context.changed()

    def _on_exit(self, job_id: str, code: int, reason: str | None) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state in TERMINAL_STATES:
                return
            job.exit_code = code
            if job.state in STOPPING_STATES or reason == "stop":
                job.state = "stopped"
                job.message = job.stop_reason or "Job stopped by user"
                job.stopped_ns = now_ns()
                self._touch(job)
            elif reason == "timeout":
                self._fail(
                    job,
                    f"Job failed: exceeded the job time limit of {self.config.job_time_limit:g} s "
                    "and the command was killed",
                )
            elif reason == "shutdown":
                self._fail(job, "Job failed: the simulator shut down while the command was running")
            elif code == 0:
                job.state = "completed"
                job.message = ""
                job.stopped_ns = now_ns()
                self._touch(job)
            elif code < 0:
                self._fail(job, f"Job failed: command was killed by signal {-code} (exit code {128 - code})")
            else:
                self._fail(job, f"Job failed: command exited with code {code}")

    def _finish_timed(self, job_id: str, over_limit: bool) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state != "running" or job.timed is None:
                return
        self._on_exit(job_id, job.timed[1], "timeout" if over_limit else None)

    def _time_limit(self, job_id: str, pid: int) -> None:
        handle = self.runner.get(job_id)
        if handle is not None and handle.pid == pid:
            self.runner.terminate(job_id, "timeout", grace=0)

    def _begin_stopping(self, job_id: str) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state != "stop":
                return
            job.state = "stopping"
            self._touch(job)
        if not self.runner.terminate(job_id, "stop"):
            self.scheduler.call_later(self.config.stop_seconds, self._finish_stop, job_id)

    def _finish_stop(self, job_id: str) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state != "stopping":
                return
            if self.runner.get(job_id) is not None:  # command started meanwhile: wait for its exit
                self.runner.terminate(job_id, "stop")
                return
            job.state = "stopped"
            job.message = job.stop_reason or "Job stopped by user"
            job.stopped_ns = now_ns()
            self._touch(job)

    def resume(self, job: Job) -> None:
        """Re-arm the timers of a job restored from the state file; a command it was running did not survive."""
        if job.state == "pending":
            self.schedule_start(job)
        elif job.state == "running":
            if job.timed is not None and job.started_ns is not None:
                duration, _ = job.timed
                finish = job.started_ns / 1e9 + min(duration, self.config.job_time_limit)
                self.scheduler.call_at(finish, self._finish_timed, job.id, duration > self.config.job_time_limit)
            else:
                job.logs.append("[simulator] the simulator restarted while this command was running", now_ns())
                self._fail(job, "Job failed: the simulator restarted while the command was running")
        elif job.state in STOPPING_STATES:
            job.state = "stopped"
            job.message = job.stop_reason or "Job stopped by user"
            job.stopped_ns = job.stopped_ns or now_ns()
            self._touch(job)

    def discard(self, job_id: str) -> None:
        """Kill a forgotten job's command at once and remove its scratch folder (not under the lock)."""
        self.runner.terminate(job_id, "deleted", grace=0)
        shutil.rmtree(self.work_dir / "jobs" / job_id, ignore_errors=True)
        shutil.rmtree(self.work_dir / "artifacts" / job_id, ignore_errors=True)

    def shutdown(self) -> None:
        """Kill every running command (their jobs end as failed)."""
        self.runner.kill_all()
