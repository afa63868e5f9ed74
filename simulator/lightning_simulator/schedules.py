"""Schedules (``/schedules``), their runs, and the simulated clock that fires them.

The clock
    ``now = real time + offset``: it starts at real time, ticks with it and only moves forward,
    through ``POST /__admin/clock`` with ``{"advanceSeconds": N}`` or ``{"set": "<RFC3339>"}`` (a move
    backward is a 400), or ``sim.advance_clock(seconds)`` / ``sim.set_clock(when)``. Every schedule
    timestamp (``createdAt``, ``updatedAt``, ``next``, and a run's ``scheduledAt``, ``createdAt``,
    ``startedAt``, ``stoppedAt``) is on this clock. The offset is kept in the state file, so after a
    restart the clock is real time plus the same offset.

Firing
    A schedule whose ``state`` is ``running`` fires once per cron instant the clock has passed
    (evaluated by :mod:`.cron` in the schedule's ``timezone``), in time order across schedules,
    whether the clock got there by itself (a timer at the next instant) or was moved. At most
    ``MAX_CATCH_UP`` instants are replayed per schedule per move; later missed instants up to the
    current time are skipped. A schedule with ``state: "stopped"`` (paused) does not fire and has no
    ``next``; resuming it computes ``next`` from the current clock (paused time is not caught up).
    Every fire records a run whose ``scheduledAt`` is the cron instant; ``total`` counts the runs.
    After a restart, instants missed while the simulator was down are replayed the same way.

Validation (400 INVALID_ARGUMENT)
    An invalid ``cronExpression`` or unknown ``timezone`` (default ``UTC``), a ``resourceType`` other than
    ``PIPELINE``, ``CLOUDSPACE_STUDIO`` or ``KUBERNETES_JOB``, an empty ``resourceId``, a Studio schedule
    whose cloudspace does not exist or that has neither a ``command`` nor a START/STOP ``actionType``, an
    update to a ``state`` other than ``running``/``stopped``.

Create body
    Only the fields of ``SchedulesServiceCreateScheduleBody`` (``CREATE_FIELDS``) count; others, such
    as ``name`` or ``state``, are ignored like the real server ignores unknown fields. A new schedule
    is ``running``; pause it with an update. Its ``name`` is its ``displayName`` (``schedule`` when
    empty), with a ``-N`` suffix when another schedule has it.

Runs (``V1ScheduleRun`` plus ``scheduledAt``, ``startedAt``, ``exitCode``, ``sessionName``)
    ``state``: ``pending`` -> ``running`` -> ``succeeded`` | ``failed``.

    * ``CLOUDSPACE_STUDIO`` with ``actionType`` ``UNSPECIFIED_ACTION``: the ``command`` really runs in
      the Studio, as ``POST /execute`` would (output and exit code recorded; exit 0 is ``succeeded``).
      A run never starts the Studio: if it is not RUNNING the run fails at once and its output says
      why (schedule a ``START`` action for that).
    * ``CLOUDSPACE_STUDIO`` with ``START`` / ``STOP``: starts the Studio on its ``codeConfig`` machine
      (nothing if it already runs there) / stops it; ``succeeded`` once requested, ``failed`` if refused.
    * ``PIPELINE`` and ``KUBERNETES_JOB``: not simulated; the run succeeds at once and its output says
      nothing was executed.

``parallelRuns``
    ``false``: at most one run of the schedule is ``running``. A fire (or a manual ``POST .../runs``)
    while a run is running records its run as ``pending``; pending runs start one at a time, oldest
    first, as soon as the previous run has ended. ``true``: every run starts when it is recorded.

Runs of a schedule are listed oldest first. ``DELETE`` drops the schedule and its pending runs; a
command already running finishes in its Studio. A running run that the simulator did not see end
(restart) is ``failed``.
"""

from __future__ import annotations

import calendar
import math
import random
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from .catalog import DEFAULT_CLUSTER_ID
from .context import ServiceContext
from .cron import Cron, CronError
from .studios import Session, StudioService, new_id
from .wire import ApiError, as_bool, as_int, as_str, camelize, invalid, not_found, parse_rfc3339, rfc3339

ACTIVE = "running"
PAUSED = "stopped"
STUDIO = "CLOUDSPACE_STUDIO"
RESOURCE_TYPES = ("PIPELINE", STUDIO, "KUBERNETES_JOB")
NO_ACTION = "UNSPECIFIED_ACTION"
START = "START"
STOP = "STOP"
ACTION_TYPES = (NO_ACTION, START, STOP)
RUN_PENDING = "pending"
RUN_RUNNING = "running"
RUN_SUCCEEDED = "succeeded"
RUN_FAILED = "failed"
MAX_CATCH_UP = 100  # instants replayed per schedule per clock move
# ``SchedulesServiceCreateScheduleBody``: the only fields a create reads.
CREATE_FIELDS = (
    "actionType",
    "command",
    "cronExpression",
    "displayName",
    "parallelRuns",
    "parentResourceId",
    "resourceId",
    "resourceType",
    "timezone",
)
# Fields an update body may set (the rest of ``V1Schedule`` is read-only).
EDITABLE = (
    "actionType",
    "clusterId",
    "command",
    "cronExpression",
    "displayName",
    "name",
    "parallelRuns",
    "parentResourceId",
    "resourceId",
    "resourceType",
    "state",
    "timezone",
)
_TRANSIENT = frozenset({"cron", "session"})  # rebuilt on load, never saved


def to_datetime(ns: int) -> datetime:
    """Epoch nanoseconds as an aware UTC datetime (microsecond precision).

    :param ns: nanoseconds since the epoch.
    """
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc) + timedelta(microseconds=rest // 1000)


def to_ns(moment: datetime) -> int:
    """An aware datetime as epoch nanoseconds.

    :param moment: the datetime (aware).
    """
    return calendar.timegm(moment.utctimetuple()) * 1_000_000_000 + moment.microsecond * 1000


def _saved(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record) if f.name not in _TRANSIENT}


@dataclass
class ScheduleRun:
    """One fire (or manual trigger) of a schedule."""

    id: str
    schedule_id: str
    resource_id: str
    action_type: str
    command: str
    scheduled_ns: int
    created_ns: int
    state: str = RUN_PENDING
    started_ns: int | None = None
    stopped_ns: int | None = None
    output: str = ""
    exit_code: int | None = None
    session_name: str = ""
    session: Session | None = field(default=None, repr=False)  # the Studio command while it runs


@dataclass
class Schedule:
    """A ``V1Schedule`` with its parsed cron and its runs."""

    id: str
    name: str
    display_name: str
    project_id: str
    user_id: str
    cluster_id: str
    cron_expression: str
    timezone: str
    resource_id: str
    resource_type: str
    parent_resource_id: str
    action_type: str
    command: str
    parallel_runs: bool
    state: str
    created_ns: int
    updated_ns: int
    cron: Cron
    next_ns: int | None = None
    runs: list[ScheduleRun] = field(default_factory=list)

    def to_state(self) -> dict[str, Any]:
        """JSON form for the state file."""
        return {**_saved(self), "runs": [_saved(r) for r in self.runs]}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Schedule:
        """Rebuild a schedule saved by :meth:`to_state`.

        :param data: the saved form.
        """
        runs = [ScheduleRun(**r) for r in data["runs"]]
        return cls(**{**data, "runs": runs, "cron": Cron.parse(data["cron_expression"], data["timezone"])})


class ScheduleService:
    """Schedules of the simulated teamspace, their runs and the simulated clock (Studio runs go through ``studios``)."""

    def __init__(self, context: ServiceContext, studios: StudioService) -> None:
        self.context = context
        self.studios = studios
        self.lock = context.lock
        self.scheduler = context.scheduler
        self._on_change = context.changed
        self._rng = random.Random(context.config.seed)
        self.schedules: dict[str, Schedule] = {}
        self.offset_ns = 0
        self._armed_at: float | None = None  # real time of the earliest pending timer

    # ---------------------------------------------------------------- clock

    def now_ns(self) -> int:
        """The simulated clock, in epoch nanoseconds."""
        return time.time_ns() + self.offset_ns

    def clock(self) -> dict[str, Any]:
        """``GET /__admin/clock``: ``{now, offsetSeconds}``."""
        with self.lock:
            return {"now": rfc3339(self.now_ns()), "offsetSeconds": self.offset_ns / 1e9}

    def move_clock(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /__admin/clock`` with ``{"advanceSeconds": N}`` or ``{"set": RFC3339}``; fires what is due.

        :param body: the move (``advance_seconds`` is accepted too); moving backward is a 400.
        """
        body = camelize(body)
        advance, target = body.get("advanceSeconds"), body.get("set")
        if (advance is None) == (target is None):
            raise invalid("send exactly one of advanceSeconds (a number of seconds) or set (an RFC3339 time)")
        with self.lock:
            now = self.now_ns()
            wanted = now + self._seconds_ns(advance) if advance is not None else parse_rfc3339(as_str(target))
            if wanted < now:
                raise invalid(f"the clock never goes backward: it is {rfc3339(now)}, {rfc3339(wanted)} is earlier")
            self.offset_ns += wanted - now
            self._on_change()
            self._catch_up()
            return self.clock()

    @staticmethod
    def _seconds_ns(value: Any) -> int:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise invalid(f"advanceSeconds must be a number, got {value!r}") from None
        if not math.isfinite(seconds):
            raise invalid(f"advanceSeconds must be finite, got {value!r}")
        return int(seconds * 1e9)

    # --------------------------------------------------------------- firing

    def _next(self, schedule: Schedule, after_ns: int) -> int:
        return to_ns(schedule.cron.next_after(to_datetime(after_ns)))

    def _due(self, schedule: Schedule, now: int) -> list[int]:
        if schedule.state != ACTIVE or schedule.next_ns is None:
            return []
        due: list[int] = []
        while schedule.next_ns <= now and len(due) < MAX_CATCH_UP:
            due.append(schedule.next_ns)
            schedule.next_ns = self._next(schedule, schedule.next_ns)
        if schedule.next_ns <= now:  # more than MAX_CATCH_UP instants were missed: skip the rest
            schedule.next_ns = self._next(schedule, now)
        return due

    def _catch_up(self) -> None:
        """Fire every instant the clock has passed, in time order, then arm a timer for the next one."""
        now = self.now_ns()
        due = [(at, s) for s in list(self.schedules.values()) for at in self._due(s, now)]
        for at, schedule in sorted(due, key=lambda item: item[0]):
            self._fire(schedule, at)
        self._arm()

    def _arm(self) -> None:
        upcoming = [s.next_ns for s in self.schedules.values() if s.state == ACTIVE and s.next_ns is not None]
        if not upcoming:
            return
        when = (min(upcoming) - self.offset_ns) / 1e9 + 0.001  # real time, just after the instant
        if self._armed_at is not None and self._armed_at <= when:
            return  # a timer at least as early is pending; it re-arms when it fires
        self._armed_at = when
        self.scheduler.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        with self.lock:
            self._armed_at = None
            self._catch_up()

    def _fire(self, schedule: Schedule, scheduled_ns: int) -> ScheduleRun:
        run = ScheduleRun(
            id=new_id("run", self._rng, ()),
            schedule_id=schedule.id,
            resource_id=schedule.resource_id,
            action_type=schedule.action_type,
            command=schedule.command,
            scheduled_ns=scheduled_ns,
            created_ns=self.now_ns(),
        )
        schedule.runs.append(run)
        self._on_change()
        self._drain(schedule)
        return run

    def _drain(self, schedule: Schedule) -> None:
        """Start pending runs, oldest first, while ``parallelRuns`` allows another one to run."""
        while True:
            if not schedule.parallel_runs and any(r.state == RUN_RUNNING for r in schedule.runs):
                return
            pending = next((r for r in schedule.runs if r.state == RUN_PENDING), None)
            if pending is None:
                return
            self._start_run(schedule, pending)

    def _start_run(self, schedule: Schedule, run: ScheduleRun) -> None:
        run.state = RUN_RUNNING
        run.started_ns = self.now_ns()
        if schedule.resource_type != STUDIO:
            note = f"[simulator] {schedule.resource_type} runs are not simulated: nothing ran"
            self._end_run(run, RUN_SUCCEEDED, note)
            return
        try:
            self._run_in_studio(schedule, run)
        except ApiError as exc:
            self._end_run(run, RUN_FAILED, exc.message)

    def _run_in_studio(self, schedule: Schedule, run: ScheduleRun) -> None:
        studio = self.studios.records.get(run.resource_id)
        if studio is None:
            raise not_found(f"cloudspace {run.resource_id!r}")
        if run.action_type == START:
            started = self.studios.start_instance(studio, studio.machine, studio.spot)
            verb = "is starting" if started else "is already running"
            self._end_run(run, RUN_SUCCEEDED, f"Studio {studio.name!r} {verb} on {studio.machine}")
        elif run.action_type == STOP:
            stopping = self.studios.stop_instance(studio, f"stopped by schedule {schedule.name!r}")
            verb = "is stopping" if stopping else "was not running"
            self._end_run(run, RUN_SUCCEEDED, f"Studio {studio.name!r} {verb}")
        else:
            session = self.studios.run_command(
                studio, run.command, on_exit=lambda ended: self._command_ended(schedule.id, run, ended)
            )
            if session.exit_code is None:
                run.session, run.session_name = session, session.name

    def _command_ended(self, schedule_id: str, run: ScheduleRun, session: Session) -> None:
        run.session_name = session.name
        run.exit_code = session.exit_code
        self._end_run(run, RUN_SUCCEEDED if session.exit_code == 0 else RUN_FAILED, session.text())
        # on the scheduler thread: a command that could not even start ends inside _drain
        self.scheduler.call_later(0, self._drain_later, schedule_id)

    def _drain_later(self, schedule_id: str) -> None:
        with self.lock:
            schedule = self.schedules.get(schedule_id)
            if schedule is not None:
                self._drain(schedule)

    def _end_run(self, run: ScheduleRun, state: str, output: str) -> None:
        run.state = state
        run.output = output
        run.stopped_ns = self.now_ns()
        run.session = None
        self._on_change()

    # --------------------------------------------------------------- render

    def render(self, schedule: Schedule) -> dict[str, Any]:
        """The schedule as ``V1Schedule`` JSON.

        :param schedule: the schedule.
        """
        return {
            "id": schedule.id,
            "name": schedule.name,
            "displayName": schedule.display_name,
            "projectId": schedule.project_id,
            "userId": schedule.user_id,
            "clusterId": schedule.cluster_id,
            "cronExpression": schedule.cron_expression,
            "timezone": schedule.timezone,
            "resourceId": schedule.resource_id,
            "resourceType": schedule.resource_type,
            "parentResourceId": schedule.parent_resource_id,
            "actionType": schedule.action_type,
            "command": schedule.command,
            "parallelRuns": schedule.parallel_runs,
            "state": schedule.state,
            "next": rfc3339(schedule.next_ns),
            "total": len(schedule.runs),
            "createdAt": rfc3339(schedule.created_ns),
            "updatedAt": rfc3339(schedule.updated_ns),
        }

    def render_run(self, schedule: Schedule, run: ScheduleRun) -> dict[str, Any]:
        """The run as ``V1ScheduleRun`` JSON plus ``scheduledAt``, ``startedAt``, ``exitCode``, ``sessionName``.

        :param schedule: the run's schedule.
        :param run: the run.
        """
        return {
            "id": run.id,
            "scheduleId": run.schedule_id,
            "resourceId": run.resource_id,
            "projectId": schedule.project_id,
            "actionType": run.action_type,
            "command": run.command,
            "output": run.session.text() if run.session is not None else run.output,
            "state": run.state,
            "exitCode": run.exit_code,
            "sessionName": run.session_name,
            "scheduledAt": rfc3339(run.scheduled_ns),
            "createdAt": rfc3339(run.created_ns),
            "startedAt": rfc3339(run.started_ns),
            "stoppedAt": rfc3339(run.stopped_ns),
        }

    # ----------------------------------------------------------- validation

    def _validated(self, project_id: str, raw: dict[str, Any]) -> dict[str, Any]:
        """The schedule attributes of a full (create, or update merged over the current) body; 400 if invalid."""
        expression = as_str(raw.get("cronExpression")).strip()
        zone = as_str(raw.get("timezone")).strip() or "UTC"
        if not expression:
            raise invalid("cronExpression is required")
        try:
            cron = Cron.parse(expression, zone)
        except CronError as exc:
            raise invalid(f"schedule {expression!r} in time zone {zone!r}: {exc}") from None
        resource_type = as_str(raw.get("resourceType")).strip()
        if resource_type not in RESOURCE_TYPES:
            raise invalid(f"resourceType must be one of {', '.join(RESOURCE_TYPES)}, got {resource_type!r}")
        action_type = as_str(raw.get("actionType")).strip() or NO_ACTION
        if action_type not in ACTION_TYPES:
            raise invalid(f"actionType must be one of {', '.join(ACTION_TYPES)}, got {action_type!r}")
        resource_id = as_str(raw.get("resourceId")).strip()
        if not resource_id:
            raise invalid("resourceId is required")
        command = as_str(raw.get("command"))
        cluster_id = as_str(raw.get("clusterId")).strip()
        if resource_type == STUDIO:
            studio = self.studios.records.get(resource_id)
            if studio is None or studio.project_id != project_id:
                raise invalid(f"cloudspace {resource_id!r} not found")
            if action_type == NO_ACTION and not command.strip():
                raise invalid("command is required for a CLOUDSPACE_STUDIO schedule without a START or STOP action")
            cluster_id = cluster_id or studio.cluster_id
        state = as_str(raw.get("state")).strip().lower() or ACTIVE
        if state not in (ACTIVE, PAUSED):
            raise invalid(f"state must be {ACTIVE!r} (fires) or {PAUSED!r} (paused), got {state!r}")
        return {
            "cron": cron,
            "cron_expression": expression,
            "timezone": zone,
            "resource_type": resource_type,
            "action_type": action_type,
            "resource_id": resource_id,
            "command": command,
            "cluster_id": cluster_id or DEFAULT_CLUSTER_ID,
            "parent_resource_id": as_str(raw.get("parentResourceId")),
            "parallel_runs": as_bool(raw.get("parallelRuns")),
            "state": state,
        }

    def _unique_name(self, project_id: str, name: str, exclude: str = "") -> str:
        taken = {s.name for s in self.schedules.values() if s.project_id == project_id and s.id != exclude}
        candidate, n = name, 0
        while candidate in taken:
            n += 1
            candidate = f"{name}-{n}"
        return candidate

    # ----------------------------------------------------------------- CRUD

    def _schedule(self, project_id: str, schedule_id: str) -> Schedule:
        self.context.require_project(project_id)
        schedule = self.schedules.get(schedule_id)
        if schedule is None or schedule.project_id != project_id:
            raise not_found(f"schedule {schedule_id!r}")
        return schedule

    def create(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /schedules``: validate, store and arm the schedule, named after its ``displayName``.

        :param project_id: the teamspace.
        :param body: ``SchedulesServiceCreateScheduleBody`` (other fields are ignored).
        """
        body = {k: v for k, v in camelize(body).items() if k in CREATE_FIELDS}
        with self.lock:
            self.context.require_project(project_id)
            values = self._validated(project_id, body)
            display = as_str(body.get("displayName")).strip()
            name = self._unique_name(project_id, display or "schedule")
            now = self.now_ns()
            schedule = Schedule(
                id=new_id("sched", self._rng, self.schedules),
                name=name,
                display_name=display or name,
                project_id=project_id,
                user_id=self.context.identity.user_id,
                created_ns=now,
                updated_ns=now,
                **values,
            )
            schedule.next_ns = self._next(schedule, now) if schedule.state == ACTIVE else None
            self.schedules[schedule.id] = schedule
            self._on_change()
            self._arm()
            return self.render(schedule)

    def list_schedules(self, project_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /schedules``, newest first; filters ``resourceId``, ``state``, ``parentResourceId``, ``clusterId``.

        :param project_id: the teamspace.
        :param query: the parsed query string.
        """
        wanted = {key: (query.get(key) or [""])[0] for key in ("resourceId", "state", "parentResourceId", "clusterId")}
        limit = as_int((query.get("limit") or [""])[0], 0)
        if limit < 0:
            raise invalid("limit must be positive")
        with self.lock:
            self.context.require_project(project_id)
            self._catch_up()
            out = [
                rendered
                for rendered in (self.render(s) for s in reversed(list(self.schedules.values())))
                if rendered["projectId"] == project_id and all(not v or rendered[k] == v for k, v in wanted.items())
            ]
            return {"schedules": out[:limit] if limit else out}

    def get(self, project_id: str, schedule_id: str) -> dict[str, Any]:
        """``GET /schedules/{id}``.

        :param project_id: the teamspace.
        :param schedule_id: the schedule.
        """
        with self.lock:
            schedule = self._schedule(project_id, schedule_id)
            self._catch_up()
            return self.render(schedule)

    def update(self, project_id: str, schedule_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /schedules/{id}``: fields sent replace the current ones (read-only fields are ignored).

        ``next`` is recomputed from the current clock when the cron, time zone or state changed.

        :param project_id: the teamspace.
        :param schedule_id: the schedule.
        :param body: ``SchedulesServiceUpdateScheduleBody``.
        """
        body = camelize(body)
        with self.lock:
            schedule = self._schedule(project_id, schedule_id)
            self._catch_up()
            current = self.render(schedule)
            merged = {**current, **{k: body[k] for k in EDITABLE if body.get(k) is not None}}
            values = self._validated(project_id, merged)
            timing = (schedule.cron_expression, schedule.timezone, schedule.state)
            for key, value in values.items():
                setattr(schedule, key, value)
            schedule.name = self._unique_name(project_id, as_str(merged["name"]).strip() or schedule.name, schedule.id)
            schedule.display_name = as_str(merged["displayName"]).strip() or schedule.name
            schedule.updated_ns = self.now_ns()
            if (schedule.cron_expression, schedule.timezone, schedule.state) != timing:
                active = schedule.state == ACTIVE
                schedule.next_ns = self._next(schedule, schedule.updated_ns) if active else None
            self._on_change()
            self._arm()
            return self.render(schedule)

    def delete(self, project_id: str, schedule_id: str) -> dict[str, Any]:
        """``DELETE /schedules/{id}`` -> ``{id, projectId, resourceId}``; pending runs are dropped.

        :param project_id: the teamspace.
        :param schedule_id: the schedule.
        """
        with self.lock:
            schedule = self._schedule(project_id, schedule_id)
            del self.schedules[schedule.id]
            self._on_change()
            return {"id": schedule.id, "projectId": project_id, "resourceId": schedule.resource_id}

    # ----------------------------------------------------------------- runs

    def _schedule_of(self, project_id: str, cloudspace_id: str, schedule_id: str) -> Schedule:
        schedule = self._schedule(project_id, schedule_id)
        if schedule.resource_type == STUDIO and cloudspace_id != schedule.resource_id:
            raise not_found(f"schedule {schedule_id!r} of cloudspace {cloudspace_id!r}")
        return schedule

    def trigger(self, project_id: str, cloudspace_id: str, schedule_id: str) -> dict[str, Any]:
        """``POST /cloudspaces/{cloudspaceId}/schedules/{scheduleId}/runs``: a run now (``parallelRuns`` applies).

        :param project_id: the teamspace.
        :param cloudspace_id: the Studio the schedule targets.
        :param schedule_id: the schedule.
        """
        with self.lock:
            schedule = self._schedule_of(project_id, cloudspace_id, schedule_id)
            return self.render_run(schedule, self._fire(schedule, self.now_ns()))

    def list_runs(self, project_id: str, cloudspace_id: str, schedule_id: str) -> dict[str, Any]:
        """``GET .../schedules/{scheduleId}/runs``, oldest first.

        :param project_id: the teamspace.
        :param cloudspace_id: the Studio the schedule targets.
        :param schedule_id: the schedule.
        """
        with self.lock:
            schedule = self._schedule_of(project_id, cloudspace_id, schedule_id)
            self._catch_up()
            return {"scheduleRuns": [self.render_run(schedule, r) for r in schedule.runs]}

    def get_run(self, project_id: str, cloudspace_id: str, schedule_id: str, run_id: str) -> dict[str, Any]:
        """``GET .../schedules/{scheduleId}/runs/{runId}``.

        :param project_id: the teamspace.
        :param cloudspace_id: the Studio the schedule targets.
        :param schedule_id: the schedule.
        :param run_id: the run.
        """
        with self.lock:
            schedule = self._schedule_of(project_id, cloudspace_id, schedule_id)
            for run in schedule.runs:
                if run.id == run_id:
                    return self.render_run(schedule, run)
            raise not_found(f"schedule run {run_id!r}")

    # ----------------------------------------------------------- python API

    def runs_of(self, id_or_name: str) -> list[dict[str, Any]]:
        """The runs of a schedule (by id, name or display name), oldest first; ``KeyError`` if none matches.

        :param id_or_name: the schedule's id, name or display name.
        """
        with self.lock:
            self._catch_up()
            for schedule in self.schedules.values():
                if id_or_name in (schedule.id, schedule.name, schedule.display_name):
                    return [self.render_run(schedule, r) for r in schedule.runs]
        raise KeyError(id_or_name)

    # ---------------------------------------------------------- persistence

    def to_state(self) -> dict[str, Any]:
        """The clock offset and every schedule with its runs."""
        with self.lock:
            return {"clockOffsetNs": self.offset_ns, "schedules": [s.to_state() for s in self.schedules.values()]}

    def load_state(self, data: dict[str, Any]) -> None:
        """Restore :meth:`to_state`; runs that were running fail, pending ones start, missed instants fire.

        :param data: the saved form (``{}`` for none).
        """
        with self.lock:
            self.offset_ns = int(data.get("clockOffsetNs", 0))
            for raw in data.get("schedules", []):
                schedule = Schedule.from_state(raw)
                self.schedules[schedule.id] = schedule
                for run in schedule.runs:
                    if run.state == RUN_RUNNING:
                        self._end_run(run, RUN_FAILED, "[simulator] the simulator stopped while this run was running\n")
            for schedule in list(self.schedules.values()):
                self._drain(schedule)
            self._catch_up()
