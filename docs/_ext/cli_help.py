"""``.. cli-help:: module:function [args...]``: the ``--help`` text of a command, generated at build time.

The function is called like the console script would call it (``function(argv)``); what it prints
before exiting is shown as a literal block, so the docs never hold a stale copy of a CLI's options.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import shlex

from docutils import nodes
from docutils.parsers.rst import Directive


class CliHelp(Directive):
    required_arguments = 1
    optional_arguments = 0
    final_argument_whitespace = True
    has_content = False

    def run(self) -> list[nodes.Node]:
        target, _, args = self.arguments[0].partition(" ")
        module_name, _, function_name = target.partition(":")
        argv = shlex.split(args) or ["--help"]
        function = getattr(importlib.import_module(module_name), function_name)
        out = io.StringIO()
        old_columns = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal width: make it stable
        try:
            with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
                function(argv)
        finally:
            if old_columns is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = old_columns
        text = out.getvalue().rstrip()
        if not text:
            raise self.error(f"{target} {' '.join(argv)} printed nothing")
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app):  # type: ignore[no-untyped-def]
    app.add_directive("cli-help", CliHelp)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
