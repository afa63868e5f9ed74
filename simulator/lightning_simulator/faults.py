"""Fault injection: added latency, dropped connections, 429 and 503 answers, and lost answers
(the request is fully processed, then the connection is closed without a response)."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .wire import as_str, camel


@dataclass
class FaultConfig:
    """What to inject, as fractions of eligible requests (0..1) and seconds.

    * ``drop_rate``: the connection is closed *before* the request is processed (nothing happened).
    * ``drop_response_rate``: the request is processed (a job may have been created), then the
      connection is closed without an answer: what a client's no-duplicate-create logic must survive.
    * ``rate_limit_rate`` / ``error_rate``: 429 (with ``Retry-After``) / 503, nothing processed.

    At most one fault hits a request; they are drawn in the order drop, 429, 503, drop-response.
    ``only_paths``: when set, only requests whose path matches one of these regular
    expressions (``re.search``, so a plain prefix such as ``/v1/projects`` works) are faulted.
    ``max_faults``: when set, at most this many faults (drops, 429s, 503s, lost answers) are injected;
    then requests pass untouched until the setting is replaced. ``{"errorRate": 1, "maxFaults": 1,
    "onlyPaths": ["^/__storage/[^/]+/2$"]}`` fails exactly one PUT of part 2 of a drive upload.
    """

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float = 1.0
    latency: float = 0.0
    drop_rate: float = 0.0
    drop_response_rate: float = 0.0
    only_paths: list[str] | None = field(default=None)
    max_faults: int | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate", "rate_limit_rate", "drop_rate", "drop_response_rate"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
            setattr(self, name, value)
        for name in ("retry_after", "latency"):
            value = float(getattr(self, name))
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
            setattr(self, name, value)
        if self.only_paths is not None:
            if isinstance(self.only_paths, str):
                self.only_paths = [self.only_paths]
            self.only_paths = [as_str(p) for p in self.only_paths]
            for pattern in self.only_paths:
                re.compile(pattern)
        if self.max_faults is not None:
            if isinstance(self.max_faults, bool) or float(self.max_faults) != int(self.max_faults):
                raise ValueError(f"max_faults must be a whole number, got {self.max_faults!r}")
            self.max_faults = int(self.max_faults)
            if self.max_faults < 0:
                raise ValueError(f"max_faults must be >= 0, got {self.max_faults}")

    def to_api(self) -> dict[str, Any]:
        """camelCase JSON form (as ``GET /__admin/faults`` returns it)."""
        return {camel(k): v for k, v in asdict(self).items()}

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> FaultConfig:
        """Build from a JSON body with camelCase or snake_case keys (missing keys -> defaults)."""
        known = {camel(k) for k in cls.__dataclass_fields__}
        values: dict[str, Any] = {}
        for key, value in body.items():
            ckey = camel(key)
            if ckey in known and value is not None:
                values[_snake(ckey)] = value
        return cls(**values)


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one request: sleep ``latency`` then ``action``.

    ``action`` is ``None``, ``"drop"``, ``"429"``, ``"503"`` or ``"drop_response"``.
    """

    latency: float = 0.0
    action: str | None = None
    retry_after: float = 0.0


NO_FAULT = FaultDecision()


class FaultInjector:
    """Thread-safe holder of the current :class:`FaultConfig` plus a seeded RNG."""

    def __init__(self, config: FaultConfig | None = None, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or FaultConfig()
        self._compiled = self._compile(self._config.only_paths)
        self._rng = random.Random(seed)
        self._injected = 0  # faults injected under the current configuration (see ``max_faults``)

    @staticmethod
    def _compile(patterns: Iterable[str] | None) -> list[re.Pattern[str]] | None:
        return None if patterns is None else [re.compile(p) for p in patterns]

    @property
    def config(self) -> FaultConfig:
        """A copy of the current configuration."""
        with self._lock:
            return FaultConfig(**asdict(self._config))

    def set(self, config: FaultConfig) -> None:
        """Replace the configuration."""
        compiled = self._compile(config.only_paths)
        with self._lock:
            self._config = config
            self._compiled = compiled
            self._injected = 0

    @property
    def injected(self) -> int:
        """How many faults the current configuration has injected."""
        with self._lock:
            return self._injected

    def clear(self) -> None:
        """Turn every fault off."""
        self.set(FaultConfig())

    def decide(self, path: str) -> FaultDecision:
        """Draw the fault (if any) for a request to ``path``."""
        with self._lock:
            cfg = self._config
            if not (cfg.latency or cfg.drop_rate or cfg.rate_limit_rate or cfg.error_rate or cfg.drop_response_rate):
                return NO_FAULT
            if self._compiled is not None and not any(p.search(path) for p in self._compiled):
                return NO_FAULT
            if cfg.max_faults is not None and self._injected >= cfg.max_faults:
                return FaultDecision(latency=cfg.latency) if cfg.latency else NO_FAULT
            action: str | None = None
            if cfg.drop_rate and self._rng.random() < cfg.drop_rate:
                action = "drop"
            elif cfg.rate_limit_rate and self._rng.random() < cfg.rate_limit_rate:
                action = "429"
            elif cfg.error_rate and self._rng.random() < cfg.error_rate:
                action = "503"
            elif cfg.drop_response_rate and self._rng.random() < cfg.drop_response_rate:
                action = "drop_response"
            if action is not None:
                self._injected += 1
            return FaultDecision(latency=cfg.latency, action=action, retry_after=cfg.retry_after)
