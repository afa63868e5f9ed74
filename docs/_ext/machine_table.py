"""``.. machine-table::``: the machine names the operators accept and the slug each is sent as.

Generated from ``airflow_provider_lightning.api.machines`` at build time, so it never drifts.
"""

from __future__ import annotations

from docutils import nodes
from docutils.parsers.rst import Directive


def _row(*cells: str) -> nodes.row:
    row = nodes.row()
    for text in cells:
        entry = nodes.entry()
        entry += nodes.paragraph("", "", nodes.literal(text, text))
        row += entry
    return row


class MachineTable(Directive):
    has_content = False

    def run(self) -> list[nodes.Node]:
        from airflow_provider_lightning.api.machines import MACHINES

        table = nodes.table(classes=["longtable"])
        group = nodes.tgroup(cols=2)
        table += group
        for width in (30, 45):  # characters; the text builder wraps cells at these widths
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        header = nodes.row()
        for title in ("machine name", "slug sent to Lightning (spec.instanceName)"):
            entry = nodes.entry()
            entry += nodes.paragraph(text=title)
            header += entry
        head += header
        group += head
        body = nodes.tbody()
        for name, slug in MACHINES.items():
            body += _row(name, slug)
        group += body
        return [table]


def setup(app):  # type: ignore[no-untyped-def]
    app.add_directive("machine-table", MachineTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
