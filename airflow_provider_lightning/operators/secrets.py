"""LightningSetSecretOperator: copy an Airflow connection's password or a Variable into a teamspace secret."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_lightning.operators.base import LightningBaseOperator, is_template

if TYPE_CHECKING:
    from airflow.sdk import Context


class LightningSetSecretOperator(LightningBaseOperator):
    """Write an Airflow connection's password or a Variable's value into a Lightning teamspace secret.

    The secret is created, or its value replaced when the teamspace already has a generic secret of that name.
    The value is registered with Airflow's secret masker before anything else happens, and is never logged,
    returned or put in an exception. Jobs read it with ``env={"ENV_NAME": {"fromSecret": secret_name}}``.

    :param secret_name: name of the teamspace secret: letters, digits and ``_``, not starting with a digit
        (templated; checked at parse time when literal and again after rendering, before any request).
    :param source_conn_id: Airflow connection whose password is the value (templated); exclusive with
        ``variable_key``.
    :param variable_key: Airflow Variable whose value is the value (templated); exclusive with ``source_conn_id``.

    Also takes ``lightning_conn_id`` and ``teamspace`` of
    :class:`~airflow_provider_lightning.operators.base.LightningBaseOperator`. Returns (XCom)
    ``{"secret_name", "secret_id", "action": "created" | "updated"}``.
    """

    template_fields: Sequence[str] = (
        *LightningBaseOperator.template_fields, "secret_name", "source_conn_id", "variable_key",
    )

    def __init__(
        self,
        *,
        secret_name: str,
        source_conn_id: str | None = None,
        variable_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.secret_name = secret_name
        self.source_conn_id = source_conn_id
        self.variable_key = variable_key
        self._check(rendered=False)

    def _check(self, *, rendered: bool) -> None:
        """Exactly one source, and a valid secret name (a Jinja value is checked only once rendered)."""
        from airflow_provider_lightning.api.secrets import validate_secret_name

        if bool(self.source_conn_id) == bool(self.variable_key):
            raise ValueError(
                "give exactly one of source_conn_id= (a connection's password) or variable_key= (a Variable); "
                f"got {'both' if self.source_conn_id else 'neither'}"
            )
        if rendered or not is_template(self.secret_name):
            validate_secret_name(self.secret_name)

    def _read_value(self) -> str:
        """The value from the connection or the Variable, masked at once."""
        from airflow.providers.common.compat.sdk import BaseHook, Variable
        from airflow.sdk.log import mask_secret  # in airflow.sdk.log on every supported version

        from airflow_provider_lightning.api.errors import LightningConfigError

        if self.source_conn_id:
            value = BaseHook.get_connection(self.source_conn_id).password
            if not value:
                raise LightningConfigError(f"connection {self.source_conn_id!r} has no password to store as a secret")
        else:
            value = Variable.get(str(self.variable_key))
            if not isinstance(value, str):
                value = str(value)
            if not value:
                raise LightningConfigError(f"Variable {self.variable_key!r} is empty")
        mask_secret(value)
        return value

    def execute(self, context: Context) -> dict[str, str]:
        self._check(rendered=True)
        value = self._read_value()
        result = self._get_hook().set_secret(self.secret_name, value)
        source = f"connection {self.source_conn_id!r}" if self.source_conn_id else f"Variable {self.variable_key!r}"
        secret_id = result.secret.id
        self.log.info("Teamspace secret %r %s from %s (id %s)", self.secret_name, result.action, source, secret_id)
        return {"secret_name": self.secret_name, "secret_id": secret_id, "action": result.action}
