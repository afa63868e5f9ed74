"""LightningMultiMachineJobOperator: multi-machine (MMT) training runs, waited on like jobs."""

from __future__ import annotations

from typing import Any

from airflow_provider_lightning.links import LightningMultiMachineJobLink
from airflow_provider_lightning.operators.jobs import LightningJobOperator


class LightningMultiMachineJobOperator(LightningJobOperator):
    """Run a Lightning multi-machine job (distributed training on ``num_machines`` machines) and wait.

    Takes every argument of :class:`~airflow_provider_lightning.operators.jobs.LightningJobOperator` (waiting,
    deferral, timeout, log streaming with the machine rank as prefix, re-attach on retry, stop on kill). When a
    machine fails, the error names its rank and shows that machine's last log lines.

    :param num_machines: number of machines (2 or more); each runs ``command`` with ``NODE_RANK`` set.
    """

    operator_extra_links = (LightningMultiMachineJobLink(),)

    def __init__(self, *, num_machines: int, **kwargs: Any) -> None:
        if isinstance(num_machines, bool) or not isinstance(num_machines, int) or num_machines < 2:
            raise ValueError(
                f"num_machines must be an integer >= 2 for a multi-machine job, got {num_machines!r}; "
                "use LightningJobOperator for one machine"
            )
        super().__init__(num_machines=num_machines, **kwargs)


LightningMMTOperator = LightningMultiMachineJobOperator
