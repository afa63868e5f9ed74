"""``lightning-simulator``: run the simulator until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .config import RUNS_COMMANDS_WARNING, SimulatorConfig, is_loopback
from .simulator import LightningSimulator


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="lightning-simulator",
        description="Local simulator of the Lightning AI REST API (jobs, multi-machine jobs, logs, teamspaces, "
        "Studios, the teamspace drive). It runs the commands submitted to it as local processes under this user: "
        "keep it on 127.0.0.1.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; loopback only)")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the simulator runs submitted commands as local processes)",
    )
    p.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default 0)")
    p.add_argument("--user-id", default="sim-user", help="accepted user id (default sim-user)")
    p.add_argument("--username", default=None, help="the user's username (default: the user id)")
    p.add_argument("--api-key", default="sim-key", help="accepted API key (default sim-key)")
    p.add_argument("--teamspace", default="sim-org/sim-teamspace", help="owner/teamspace to simulate")
    p.add_argument("--pending-seconds", type=_non_negative, default=0.2, help="provisioning time (default 0.2)")
    p.add_argument("--stop-seconds", type=_non_negative, default=0.1, help="time spent in 'stop' (default 0.1)")
    p.add_argument(
        "--job-time-limit", type=_non_negative, default=600.0, help="seconds a command may run (default 600)"
    )
    p.add_argument("--kill-grace", type=_non_negative, default=1.0, help="SIGTERM->SIGKILL delay on stop")
    p.add_argument(
        "--deployment-ready-timeout",
        type=_non_negative,
        default=60.0,
        help="seconds a deployment replica's command has to accept connections on $PORT (default 60)",
    )
    p.add_argument(
        "--no-deployment-commands",
        action="store_true",
        help="deployment replicas run no process; their endpoint answers /health and echoes other requests",
    )
    p.add_argument(
        "--timed-jobs",
        action="store_true",
        help="jobs whose env has SIM_DURATION_SECONDS and SIM_EXIT_CODE finish on a timer without a process",
    )
    p.add_argument("--error-rate", type=_fraction, default=0.0, help="fraction of requests answered 503")
    p.add_argument("--rate-limit-rate", type=_fraction, default=0.0, help="fraction of requests answered 429")
    p.add_argument("--retry-after", type=_non_negative, default=1.0, help="Retry-After seconds on 429 (default 1)")
    p.add_argument("--latency", type=_non_negative, default=0.0, help="seconds added to every request")
    p.add_argument("--drop-rate", type=_fraction, default=0.0, help="fraction of connections closed unanswered")
    p.add_argument(
        "--drop-response-rate",
        type=_fraction,
        default=0.0,
        help="fraction of requests processed (e.g. the job is created) whose answer is then never sent",
    )
    p.add_argument("--state-file", type=Path, default=None, help="JSON file that keeps jobs across restarts")
    p.add_argument("--work-dir", type=Path, default=None, help="folder for job and Studio files (default: temp)")
    p.add_argument(
        "--drive-dir",
        type=Path,
        default=None,
        help="folder of the teamspace drive, one subfolder per teamspace (default: WORK_DIR/drive, else "
        "STATE_FILE.drive, else a temporary folder removed at exit)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for fault and id randomness")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    p.add_argument(
        "--lenient",
        action="store_true",
        help="accept body fields and query parameters the official client does not have (default: strict, a 400)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightning-simulator`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not is_loopback(args.host) and not args.allow_remote:
        parser.error(f"--host {args.host} is not a loopback address: {RUNS_COMMANDS_WARNING}; "
                     "add --allow-remote to bind it anyway")
    config = SimulatorConfig(
        host=args.host,
        allow_remote=args.allow_remote,
        port=args.port,
        user_id=args.user_id,
        username=args.username,
        api_key=args.api_key,
        teamspace=args.teamspace,
        pending_seconds=args.pending_seconds,
        stop_seconds=args.stop_seconds,
        job_time_limit=args.job_time_limit,
        kill_grace=args.kill_grace,
        deployment_commands=not args.no_deployment_commands,
        deployment_ready_timeout=args.deployment_ready_timeout,
        timed_jobs=args.timed_jobs,
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        retry_after=args.retry_after,
        latency=args.latency,
        drop_rate=args.drop_rate,
        drop_response_rate=args.drop_response_rate,
        state_file=args.state_file,
        work_dir=args.work_dir,
        drive_dir=args.drive_dir,
        seed=args.seed,
        verbose=args.verbose,
        strict=not args.lenient,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sim = LightningSimulator(config).start()
    try:
        print(f"Lightning simulator listening on {sim.url}", flush=True)
        if not is_loopback(args.host):
            print(f"WARNING: bound to {args.host}: {RUNS_COMMANDS_WARNING}", file=sys.stderr, flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
