"""A sensor that waits for a path to exist in the teamspace drive."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator

from airflow_provider_lightning import DEFAULT_CONN_ID
from airflow_provider_lightning.operators.base import is_template, make_hook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_lightning.hooks.lightning import LightningHook


class LightningDrivePathSensor(BaseSensorOperator):
    """Wait until a file or folder exists in the teamspace drive (for example a checkpoint a job writes).

    Use ``mode="reschedule"`` to free the worker slot between checks. The XCom value is
    ``{"path", "is_dir", "size", "last_modified"}`` of the entry found.

    :param path: the drive path to wait for (templated).
    :param min_size: for a file, also wait until it holds at least this many bytes.
    :param lightning_conn_id: Airflow connection id of type ``lightning`` (templated).
    :param teamspace: teamspace (``owner/name``) overriding the connection's (templated).
    """

    template_fields: Sequence[str] = ("path", "lightning_conn_id", "teamspace")
    ui_color = "#792ee5"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        path: str,
        min_size: int = 0,
        lightning_conn_id: str = DEFAULT_CONN_ID,
        teamspace: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.min_size = min_size
        self.lightning_conn_id = lightning_conn_id
        self.teamspace = teamspace
        if not is_template(path):
            from airflow_provider_lightning.api.drive import drive_path

            drive_path(path, "path")
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
            raise ValueError(f"min_size must be a non-negative integer, got {min_size!r}")
        self._hook: LightningHook | None = None

    def _get_hook(self) -> LightningHook:
        if self._hook is None:
            self._hook = make_hook(self.lightning_conn_id, self.teamspace)
        return self._hook

    def poke(self, context: Context) -> Any:
        from airflow.providers.common.compat.sdk import PokeReturnValue

        entry = self._get_hook().drive_path_info(self.path)
        if entry is None:
            self.log.info("Drive path %s does not exist yet", self.path)
            return False
        if not entry.is_dir and (entry.size or 0) < self.min_size:
            self.log.info("Drive file %s holds %s bytes, waiting for %d", self.path, entry.size, self.min_size)
            return False
        self.log.info("Drive path %s exists (%s)", entry.path, "folder" if entry.is_dir else f"{entry.size} bytes")
        return PokeReturnValue(is_done=True, xcom_value=entry.to_json())
