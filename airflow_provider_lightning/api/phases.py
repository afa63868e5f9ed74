"""Typed phases shared by every Lightning resource kind."""

from __future__ import annotations

import enum


class Phase(str, enum.Enum):
    """Where a Lightning resource is in its life, normalised across jobs, MMT runs, deployments, Studios."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """The resource will not change phase again on its own."""
        return self in _TERMINAL

    @property
    def is_success(self) -> bool:
        """The resource finished its work successfully."""
        return self is Phase.COMPLETED

    @property
    def is_active(self) -> bool:
        """The resource holds (or is about to hold) a machine."""
        return not self.is_terminal

    @classmethod
    def parse(cls, value: str | Phase) -> Phase:
        """Read a phase name given by a user (``"completed"``, ``"COMPLETED"``); ValueError lists the choices."""
        if isinstance(value, Phase):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            choices = ", ".join(p.value for p in cls)
            raise ValueError(f"unknown phase {value!r}; expected one of: {choices}") from None


_TERMINAL = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.STOPPED})
