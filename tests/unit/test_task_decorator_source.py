"""``@task.lightning`` without a server: the function's source, the generated runner script and command.

The runner is run here for real (``sh -c <command>`` in a subprocess, a temporary ``LIGHTNING_ARTIFACTS_DIR``),
as a job would run it; the dag.test() runs against the simulator are in tests/integration/test_task_decorator.py.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG, task
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_lightning.api.results import ERROR_KEY, RESULT_ENV, RESULT_FILE, describe_error
from airflow_provider_lightning.decorators.lightning import (
    ARGS_ENV,
    _LightningDecoratedOperator,
    build_command,
    encode_arguments,
    function_source,
    heredoc_delimiter,
    lightning_task,
    runner_script,
)

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PYTHON = shlex.quote(sys.executable)


def tagged(label):
    """A user's own decorator with arguments (the job runs the function without it)."""

    def wrap(function):
        @functools.wraps(function)
        def inner(*args, **kwargs):
            return function(*args, **kwargs)

        return inner

    return wrap


# -- functions the tests extract (their source is this file) ------------------------------------


@task.lightning(studio="my-studio", machine="CPU", requirements=["pip"])
def plain(x, y=2):
    return {"sum": x + y}


@tagged("outer")
@task.lightning(
    studio="my-studio",
    env={"A": "1"},
)
# a comment between the decorators
@tagged(label="inner")
def stacked(values):
    """Adds them up."""
    return sum(values)


def outer_factory():
    @task.lightning(studio="my-studio")
    def nested(name):
        text = """first line
  keeps two spaces
        and eight"""
        return f"""{name}
    stays indented""" if text else ""

    return nested


def raises(value):
    print("about to fail", flush=True)
    raise ValueError(f"bad value {value}")


def returns_a_set():
    return {1, 2}


def prints_and_returns(a, b, *, scale=1):
    import sys

    print("from stdout", a)
    print("from stderr", b, file=sys.stderr)
    return {"product": a * b * scale, "rank": __import__("os").environ.get("NODE_RANK", "0")}


async def awaits(x):
    import asyncio

    await asyncio.sleep(0)
    return [x, x]


def uses_ds(ds):
    return ds


def exits_hard():
    import os

    os._exit(3)


def has_delimiters():
    text = "AIRFLOW_LIGHTNING_SCRIPT\nAIRFLOW_LIGHTNING_SCRIPT_0123456789abcdef\nEOF"
    return text.splitlines()


# -- source extraction --------------------------------------------------------------------------


def test_source_extraction_strips_stacked_decorators_with_arguments_and_comments():
    source = function_source(stacked)
    assert source.code.startswith("def stacked(values):\n")
    assert "@" not in source.code and "a comment between" not in source.code
    assert source.name == "stacked" and source.filename == __file__
    lines = Path(__file__).read_text().splitlines()
    assert lines[source.first_line - 1] == "def stacked(values):"
    assert function_source(plain.function).code == 'def plain(x, y=2):\n    return {"sum": x + y}\n'


def test_nested_function_is_dedented_without_changing_its_multiline_strings():
    source = function_source(outer_factory().function)
    assert source.code.startswith("def nested(name):\n    text = ")
    namespace: dict = {}
    exec(source.code, namespace)
    assert namespace["nested"]("n") == "n\n    stays indented"
    assert '"""first line\n  keeps two spaces\n        and eight"""' in source.code


def test_the_operator_keeps_the_source_and_builds_no_command_before_it_runs():
    with DAG("source_dag", schedule=None, start_date=START):
        op = plain(1)
    assert isinstance(op.operator, _LightningDecoratedOperator)
    assert op.operator.get_python_source() == function_source(plain.function).code
    assert "command" not in op.operator.template_fields and "requirements" in op.operator.template_fields
    assert op.operator.read_result is True and op.operator.custom_operator_name == "@task.lightning"


def test_a_lambda_is_rejected_at_parse_time_naming_it():
    decorated = lightning_task(lambda rows: rows * 2, studio="my-studio")
    with pytest.raises(ValueError, match=r"lambda .*<lambda>.*define it with 'def'"):
        with DAG("lambda_dag", schedule=None, start_date=START):
            decorated(3)


def test_a_function_without_source_code_is_rejected_at_parse_time_naming_it():
    namespace: dict = {}
    exec("def typed_in_a_repl(x):\n    return x\n", namespace)
    decorated = lightning_task(namespace["typed_in_a_repl"], studio="my-studio")
    with pytest.raises(ValueError, match=r"source code of function typed_in_a_repl .*interactive session"):
        with DAG("repl_dag", schedule=None, start_date=START):
            decorated(1)


def test_a_closure_over_local_variables_is_rejected_naming_them():
    factor = 3

    def scaled(x):
        return x * factor

    with pytest.raises(ValueError, match=r"scaled uses variables of its enclosing function \(factor\)"):
        function_source(scaled)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"command": "echo hi"}, "do not pass command="),
    ({"read_result": False}, "read_result must be True"),
    ({"wait_for_completion": False}, "wait_for_completion must be True"),
    ({"image": "python:3.12", "studio": None}, "artifacts_destination"),
    ({"image": "python:3.12", "studio": None, "artifacts_destination": "s3:bucket:out", "entrypoint": "python"},
     "entrypoint"),
    ({"env": {ARGS_ENV: "x"}}, ARGS_ENV),
    ({"requirements": "pip"}, "list of pip requirement strings"),
    ({"python": "python3\nrm -rf /"}, "interpreter"),
])
def test_bad_decorator_arguments_fail_at_parse_time(kwargs, message):
    decorated = lightning_task(plain.function, **{"studio": "my-studio", **kwargs})
    with pytest.raises(ValueError, match=message):
        with DAG("bad_args_dag", schedule=None, start_date=START):
            decorated(1)


def test_a_context_variable_parameter_must_be_passed_as_an_argument():
    with DAG("context_dag", schedule=None, start_date=START):
        implicit = lightning_task(uses_ds, studio="my-studio")().operator
        explicit = lightning_task(uses_ds, studio="my-studio")(ds="{{ ds }}").operator
    with pytest.raises(ValueError, match=r"parameter 'ds' of uses_ds\(\) is an Airflow context variable"):
        implicit._job_env({"ds": "2026-01-01"})
    explicit.op_kwargs = {"ds": "2026-01-01"}  # what rendering puts in place
    env = explicit._job_env({"ds": "2026-01-01"})
    assert json.loads(env[ARGS_ENV]) == {"args": [], "kwargs": {"ds": "2026-01-01"}}


def test_the_decorator_is_registered_as_task_lightning():
    assert task.lightning is lightning_task


# -- arguments ------------------------------------------------------------------------------------


class _LazyResults(Sequence):
    """Like Airflow's lazy sequence of a mapped task's results: a Sequence, not a list."""

    def __init__(self, items):
        self._items = items

    def __getitem__(self, index):
        return self._items[index]

    def __len__(self):
        return len(self._items)


def test_arguments_are_json_and_a_non_json_argument_is_named():
    text = encode_arguments("f", [1, _LazyResults([{"a": 1}, {"a": 2}])], {"path": "/teamspace/x"}, ["n", "rows"])
    assert json.loads(text) == {"args": [1, [{"a": 1}, {"a": 2}]], "kwargs": {"path": "/teamspace/x"}}
    with pytest.raises(ValueError, match=r"argument 'when' of f\(\) is not JSON-serialisable \(DateTime"):
        encode_arguments("f", [], {"when": START})
    with pytest.raises(ValueError, match=r"argument 'rows' of f\(\) is not JSON-serialisable \(set"):
        encode_arguments("f", [1, {1, 2}], {}, ["n", "rows"])
    with pytest.raises(ValueError, match="more than"):
        encode_arguments("f", ["x" * 200_000], {})


# -- the heredoc ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("AIRFLOW_LIGHTNING_SCRIPT0123456789abcdef\n'\" $`\\")), max_size=300))
def test_the_heredoc_delimiter_never_occurs_in_the_script(text):
    delimiter = heredoc_delimiter(text)
    assert delimiter not in text
    clashing = text + "\n" + delimiter + "\n"  # a script that holds the delimiter chosen for the other one
    assert heredoc_delimiter(clashing) not in clashing


def test_a_source_holding_delimiter_like_lines_runs_through_a_real_shell(tmp_path):
    script = runner_script(function_source(has_delimiters))
    command = build_command(script, python=PYTHON)
    lines = command.splitlines()
    assert lines[0].endswith(f"- <<'{lines[-1]}'") and lines.count(lines[-1]) == 1
    done, result = run_job(command, tmp_path)
    assert done.returncode == 0, done.stderr
    assert result == ["AIRFLOW_LIGHTNING_SCRIPT", "AIRFLOW_LIGHTNING_SCRIPT_0123456789abcdef", "EOF"]


def test_requirements_are_installed_with_the_interpreter_and_quoted():
    command = build_command("print(1)\n", python="/opt/py/bin/python", requirements=["torch>=2", "a b", "x;y"])
    first = command.splitlines()[0]
    assert first.startswith("/opt/py/bin/python -m pip install --quiet 'torch>=2' 'a b' 'x;y' && /opt/py/bin/python - <<")


# -- the runner script ----------------------------------------------------------------------------


def test_the_runner_script_compiles_and_uses_python_3_8_syntax_only():
    script = runner_script(function_source(stacked), max_result_bytes=1024)
    compile(script, "<runner>", "exec")
    ast.parse(script, feature_version=(3, 8))
    assert script.isascii()


def run_job(command: str, artifacts: Path, *, args=(), kwargs=None, rank: str | None = None):
    """Run a job command as the platform would (``sh -c``); the exit, and the result it wrote (None if none)."""
    env = {**os.environ, "LIGHTNING_ARTIFACTS_DIR": str(artifacts), RESULT_ENV: RESULT_FILE,
           ARGS_ENV: encode_arguments("f", list(args), kwargs or {})}
    if rank is not None:
        env["NODE_RANK"] = rank
    done = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=60)
    path = artifacts / RESULT_FILE
    return done, (json.loads(path.read_text()) if path.exists() else None)


def command_for(function, **kwargs) -> str:
    return build_command(runner_script(function_source(function), **kwargs), python=PYTHON)


def test_the_runner_writes_the_return_value_and_leaves_prints_on_stdout_and_stderr(tmp_path):
    done, result = run_job(command_for(prints_and_returns), tmp_path, args=[3], kwargs={"b": 4, "scale": 2})
    assert done.returncode == 0, done.stderr
    assert result == {"product": 24, "rank": "0"}
    assert "from stdout 3" in done.stdout and "from stderr 4" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == [RESULT_FILE]  # no partial file left behind


def test_the_runner_awaits_an_async_function(tmp_path):
    done, result = run_job(command_for(awaits), tmp_path, args=["a"])
    assert done.returncode == 0, done.stderr
    assert result == ["a", "a"]


def test_only_rank_zero_writes_the_result(tmp_path):
    done, result = run_job(command_for(prints_and_returns), tmp_path, args=[1, 1], rank="1")
    assert done.returncode == 0, done.stderr
    assert result is None and "from stdout 1" in done.stdout


def test_an_exception_writes_the_error_record_with_the_remote_traceback_and_exits_1(tmp_path):
    done, result = run_job(command_for(raises), tmp_path, args=[7])
    assert done.returncode == 1
    assert "about to fail" in done.stdout
    error = result[ERROR_KEY]
    assert error["type"] == "ValueError" and error["message"] == "bad value 7"
    line = next(i for i, text in enumerate(Path(__file__).read_text().splitlines(), 1)
                if 'raise ValueError(f"bad value {value}")' in text)
    assert f'File "{__file__}", line {line}, in raises' in error["traceback"]
    assert 'raise ValueError(f"bad value {value}")' in error["traceback"]
    assert "_main" not in error["traceback"]  # the runner's own frame is left out
    assert error["traceback"] in done.stderr
    described = describe_error(result)
    assert described.startswith("ValueError: bad value 7\nRemote traceback:\n")


def test_a_non_json_return_value_is_an_error_record(tmp_path):
    done, result = run_job(command_for(returns_a_set), tmp_path)
    assert done.returncode == 1
    message = result[ERROR_KEY]["message"]
    assert message.startswith("the return value of returns_a_set is not JSON-serialisable:") and "set" in message
    assert "not JSON-serialisable" in done.stderr


def test_a_long_traceback_is_cut_to_fit_max_result_bytes(tmp_path):
    done, result = run_job(command_for(raises, max_result_bytes=600), tmp_path, args=["x" * 2000])
    assert done.returncode == 1
    assert len((tmp_path / RESULT_FILE).read_bytes()) <= 600
    assert result[ERROR_KEY]["type"] == "ValueError"


def test_a_missing_artifacts_dir_fails_the_job_with_a_clear_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LIGHTNING_ARTIFACTS_DIR"}
    done = subprocess.run(["sh", "-c", command_for(plain.function)], env={**env, ARGS_ENV: '{"args": [1], "kwargs": {}}'},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "LIGHTNING_ARTIFACTS_DIR" in done.stderr


def test_a_stale_result_of_an_earlier_run_is_removed_before_the_function_runs(tmp_path):
    (tmp_path / RESULT_FILE).write_text('{"stale": true}')
    done, result = run_job(command_for(exits_hard), tmp_path)
    assert done.returncode == 3 and result is None
