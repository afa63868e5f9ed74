"""Running Lightning triggers the way the triggerer does, for the poller and log tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from airflow_provider_lightning.triggers import poller
from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger


def rebuilt(**kwargs: Any) -> LightningPhaseTrigger:
    """A trigger built from ``kwargs``, then rebuilt from its JSON-serialized form, as the triggerer does."""
    _, serialized = LightningPhaseTrigger(**kwargs).serialize()
    return LightningPhaseTrigger(**json.loads(json.dumps(serialized)))


async def first_event(trigger: LightningPhaseTrigger) -> dict[str, Any]:
    """The payload of the trigger's first event; the generator is closed either way."""
    agen = trigger.run()
    try:
        return (await agen.__anext__()).payload
    finally:
        await agen.aclose()


async def the_poller() -> poller.SharedPoller:
    """The one poller of this event loop, once the waits have subscribed."""
    while not poller.pollers():
        await asyncio.sleep(0.01)
    (only,) = poller.pollers().values()
    return only
