"""The optional JSON state file: atomic writes and a debounced autosaver."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_state_file(path: Path) -> dict[str, Any] | None:
    """Read a state file; ``None`` when it does not exist or is empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    if not text.strip():
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def save_state_file(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class AutoSaver:
    """Saves the state at most every ``interval`` seconds after something changed, and on close."""

    def __init__(self, path: Path, snapshot: Callable[[], dict[str, Any]], interval: float = 0.5) -> None:
        self.path = path
        self._snapshot = snapshot
        self._interval = interval
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._save_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="lightning-sim-autosave", daemon=True)

    def start(self) -> None:
        """Start the background saver."""
        self._thread.start()

    def mark_dirty(self) -> None:
        """Note that the state changed."""
        self._dirty.set()

    def save_now(self) -> None:
        """Write the current state immediately."""
        with self._save_lock:
            self._dirty.clear()
            save_state_file(self.path, self._snapshot())

    def close(self) -> None:
        """Stop the saver after a final save."""
        self._closed.set()
        self._dirty.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.save_now()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._dirty.wait()
            if self._closed.is_set():
                return
            self.save_now()
            self._closed.wait(self._interval)
