"""The few things that differ between the Airflow versions this provider supports (3.1.2 and newer).

Everything else is imported through ``airflow.providers.common.compat.sdk``, which picks the import path of the
running Airflow, as the official providers do. ``docs/compatibility.rst`` lists which feature needs which version.
Import-light: nothing from Airflow is imported until a function is called.
"""

from __future__ import annotations

import asyncio
from typing import Any


def cron_trigger_timetable() -> type:
    """Airflow's DAG-authoring ``CronTriggerTimetable``: the Task SDK's from Airflow 3.2 on, the core one in 3.1."""
    try:
        from airflow.sdk import CronTriggerTimetable
    except ImportError:  # Airflow 3.1: timetables are not in the Task SDK yet
        from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[assignment,no-redef]
    return CronTriggerTimetable


async def get_async_extra_dejson(conn: Any) -> dict[str, Any]:
    """A connection's extra, read from the event loop (triggers): common-compat's helper (1.21 and newer).

    common-compat 1.21 and newer need Python 3.11, so Python 3.10 gets at most 1.20, which lacks the helper;
    there its two lines run here.
    """
    try:
        from airflow.providers.common.compat.connection import get_async_extra_dejson as helper
    except ImportError:  # common-compat < 1.21
        if hasattr(conn, "aextra_dejson"):  # Airflow 3.3.2+ masks the extra's secrets asynchronously
            return await conn.aextra_dejson()
        # older: extra_dejson masks them with a blocking call to the supervisor, safe in a worker thread only
        return await asyncio.to_thread(lambda: conn.extra_dejson)
    return await helper(conn)
