"""``python -m airflow_provider_lightning.schedules sync|restore``: the explicit schedule sync (network)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_lightning.schedules")
    parser.add_argument("--conn-id", default="lightning_default", help="Airflow connection id of type lightning")
    parser.add_argument("--teamspace", default=None, help="teamspace (owner/name) overriding the connection's")
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync", help="write the teamspace's schedules to a snapshot file")
    sync.add_argument("--output", required=True, help="snapshot file to write")
    sync.add_argument("--pause", action="store_true", help="pause the Lightning-side schedules (no double firing)")
    restore = commands.add_parser("restore", help="resume the schedules a snapshot paused")
    restore.add_argument("--snapshot", required=True, help="snapshot file written by sync --pause")
    args = parser.parse_args(argv)

    from airflow_provider_lightning.hooks.lightning import LightningHook
    from airflow_provider_lightning.schedules.factory import restore_schedules, sync_snapshot

    with LightningHook(args.conn_id, teamspace=args.teamspace) as hook:
        if args.command == "sync":
            report_sync(sync_snapshot(hook, args.output, pause=args.pause), args.output)
        else:
            print(f"resumed {restore_schedules(hook, args.snapshot)} schedules")
    return 0


def report_sync(snapshot: dict[str, Any], output: str) -> None:
    """Print what a sync wrote, and a warning on stderr for each schedule that cannot become a DAG.

    :param snapshot: the snapshot ``sync_snapshot`` returned.
    :param output: the snapshot file it was written to.
    """
    from airflow_provider_lightning.schedules.factory import unmappable_message

    paused = sum(1 for entry in snapshot["schedules"] if entry["paused_by_sync"])
    print(
        f"wrote {len(snapshot['schedules'])} schedules of {snapshot['teamspace']} to {output}"
        f" ({paused} paused on Lightning)"
    )
    for item in snapshot["unmappable"]:
        print(f"warning: {unmappable_message(item)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
