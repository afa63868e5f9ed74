"""``@task.lightning``: run a Python function as a Lightning AI job and return its result as the task's XCom.

The function's source (without its decorators) and a small runner travel in the job's command, as a shell
here-document fed to ``python3 -``; the arguments travel as JSON in the environment variable
``AIRFLOW_LIGHTNING_ARGS``. In the job the runner calls the function; machine rank 0 writes the return value as
JSON to ``$LIGHTNING_ARTIFACTS_DIR/$AIRFLOW_LIGHTNING_RESULT_FILE``, or, when the function raised, the
exception and its traceback. The operator reads that file after the job ended (``read_result=True`` of
:class:`~airflow_provider_lightning.operators.jobs.LightningJobOperator`), so the value becomes the task's return
value and a remote exception shows in the task's error.

Everything else (image or Studio, machine, env and secrets, machines, deferral, timeout, re-attaching retries,
stopping the job on kill) is the job operator's.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import io
import json
import shlex
import textwrap
import tokenize
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.sdk import DecoratedOperator, task_decorator_factory

from airflow_provider_lightning.operators.base import is_template
from airflow_provider_lightning.operators.jobs import LightningJobOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskDecorator
    from airflow.sdk import Context

#: The environment variable that carries the function's arguments (JSON ``{"args": [...], "kwargs": {...}}``).
ARGS_ENV = "AIRFLOW_LIGHTNING_ARGS"
#: Largest JSON of the arguments: one environment value (Linux refuses a single one over 128 KiB).
MAX_ARGS_BYTES = 96 * 1024
#: Largest generated command: one argument of ``sh -c`` / ``bash -c`` (the same kernel limit).
MAX_COMMAND_BYTES = 120 * 1024
#: What ``__init__`` puts in ``command`` until ``execute`` builds the real one (after the templates are rendered).
_PENDING_COMMAND = "python3 -  # built when the task runs"
_DELIMITER_BASE = "AIRFLOW_LIGHTNING_SCRIPT"
_ENTRYPOINT_HINT = "an entrypoint that runs the command with a shell, like 'sh -c' or 'bash -lc'"


# -- the function's source ---------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionSource:
    """A function's definition as the job runs it.

    :param name: the name the ``def`` binds (what the runner calls).
    :param code: the ``def`` and its body, dedented, without decorators.
    :param filename: the file it was read from (remote tracebacks name it).
    :param first_line: the line of the ``def`` in that file (remote tracebacks show the file's line numbers).
    """

    name: str
    code: str
    filename: str
    first_line: int


def _display_name(function: Any) -> str:
    return str(getattr(function, "__qualname__", None) or getattr(function, "__name__", None) or function)


def _dedent(lines: list[str]) -> str:
    """Remove the first line's indentation from every line of code, never from inside a multi-line string.

    ``textwrap.dedent`` would change the value of an indented triple-quoted string; the tokenizer says which
    lines continue a string (or an f-string) and those keep their text.
    """
    first = lines[0]
    width = len(first) - len(first.lstrip(" \t"))
    if width == 0:
        return "".join(lines)
    in_string: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO("".join(lines)).readline):
            if token.end[0] > token.start[0]:  # spans lines: the lines after its first are string content
                in_string.update(range(token.start[0] + 1, token.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        return textwrap.dedent("".join(lines))
    result = []
    for number, line in enumerate(lines, start=1):
        if number in in_string:
            result.append(line)
        else:
            leading = len(line) - len(line.lstrip(" \t"))
            result.append(line[min(width, leading):])
    return "".join(result)


def function_source(function: Callable[..., Any]) -> FunctionSource:
    """The function's ``def`` without decorators, dedented; ValueError naming it when the source is unavailable.

    A lambda, a function typed into an interactive session and one using variables of an enclosing function
    cannot run in a job: the job gets only the ``def`` itself.
    """
    name = _display_name(function)
    target = inspect.unwrap(function) if callable(function) else function
    if getattr(target, "__name__", "") == "<lambda>":
        raise ValueError(
            f"@task.lightning cannot run the lambda {name}: the job gets the function's source code, so define it "
            "with 'def' in a module (the DAG file)"
        )
    if not inspect.isfunction(target):
        raise ValueError(
            f"@task.lightning needs a plain Python function defined with 'def', got {name} "
            f"({type(target).__name__})"
        )
    try:
        lines, start = inspect.getsourcelines(target)
        filename = inspect.getsourcefile(target) or target.__code__.co_filename
    except (OSError, TypeError) as error:
        raise ValueError(
            f"@task.lightning cannot read the source code of function {name} ({error}): define it with 'def' in a "
            "module file (the DAG file), not in an interactive session, a notebook cell or with exec()"
        ) from None
    code = _dedent(lines)
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        raise ValueError(f"@task.lightning could not parse the source code of function {name}: {error}") from None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name != target.__name__:
        raise ValueError(
            f"@task.lightning could not find the definition of function {name} in its source code: define it with "
            "'def' on its own (not created by another expression)"
        )
    free = sorted(set(target.__code__.co_freevars) - {node.name})
    if free:
        raise ValueError(
            f"@task.lightning function {name} uses variables of its enclosing function ({', '.join(free)}), which the "
            "job does not have: pass them as arguments, or define the function at module level"
        )
    body = code.splitlines(keepends=True)[node.lineno - 1 : node.end_lineno]
    return FunctionSource(
        name=node.name,
        code="".join(body).rstrip() + "\n",
        filename=filename,
        first_line=start + node.lineno - 1,
    )


# -- the runner script and the command ---------------------------------------------------------

# Runs in the job, under any Python 3.8+, with the standard library only. The constants come before it.
_RUNNER_BODY = r'''
import ast
import asyncio
import json
import linecache
import os
import sys
import traceback


def _is_rank_zero():
    return (os.environ.get("NODE_RANK") or "0").strip() == "0"


def _result_path():
    folder = os.environ.get("LIGHTNING_ARTIFACTS_DIR")
    name = os.environ.get(RESULT_ENV)
    return os.path.join(folder, name) if folder and name else None


def _remove_stale_result():
    # an earlier run may have left a result in a reused artifacts destination: it must not pass for this one's
    path = _result_path()
    if path is not None:
        try:
            os.remove(path)
        except OSError:
            pass


def _write_result(text):
    path = _result_path()
    if path is None:
        sys.stderr.write(
            "@task.lightning: LIGHTNING_ARTIFACTS_DIR or %s is not set, the result cannot be written\n" % RESULT_ENV
        )
        return False
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, ".%s.%d.partial" % (os.path.basename(path), os.getpid()))
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)  # atomic: a reader sees the whole result or none
    return True


def _error_record(kind, message, trace):
    while True:
        text = json.dumps({ERROR_KEY: {"type": kind, "message": message, "traceback": trace}})
        if len(text.encode("utf-8")) <= MAX_RESULT_BYTES or (not trace and len(message) <= 64):
            return text
        if len(trace) > 64:
            trace = "...\n" + trace[len(trace) // 2:]  # keep the innermost frames
        elif trace:
            trace = ""
        else:
            message = message[: len(message) // 2] + "..."


def _fail(kind, message, trace):
    sys.stdout.flush()
    sys.stderr.write(trace or "%s: %s\n" % (kind, message))
    sys.stderr.flush()
    if _is_rank_zero():
        try:
            _write_result(_error_record(kind, message, trace))
        except Exception as error:
            sys.stderr.write("@task.lightning: could not write the error record: %s\n" % error)
    sys.exit(1)


def _type_name(error):
    kind = type(error)
    module = getattr(kind, "__module__", "builtins")
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if module in ("builtins", "__main__") else "%s.%s" % (module, name)


def _main():
    raw = os.environ.get(ARGS_ENV)
    arguments = json.loads(raw) if raw else {"args": [], "kwargs": {}}
    # tracebacks show the function's lines, at their line numbers in the DAG file
    lines = ["\n"] * (FIRST_LINE - 1) + SOURCE.splitlines(True)
    linecache.cache[FILENAME] = (len(SOURCE), None, lines, FILENAME)
    tree = ast.parse(SOURCE, FILENAME)
    ast.increment_lineno(tree, FIRST_LINE - 1)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(compile(tree, FILENAME, "exec"), namespace)
    function = namespace[NAME]
    if _is_rank_zero():
        _remove_stale_result()
    try:
        value = function(*arguments["args"], **arguments["kwargs"])
        if asyncio.iscoroutine(value):
            value = asyncio.run(value)
    except BaseException as error:
        frames = error.__traceback__.tb_next if error.__traceback__ is not None else None  # skip _main's frame
        _fail(_type_name(error), str(error), "".join(traceback.format_exception(type(error), error, frames)))
    sys.stdout.flush()
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        _fail(_type_name(error), "the return value of %s is not JSON-serialisable: %s" % (NAME, error), "")
    if _is_rank_zero() and not _write_result(text):
        sys.exit(1)


_main()
'''


def runner_script(source: FunctionSource, *, max_result_bytes: int = 64 * 1024) -> str:
    """The Python script the job runs: constants naming the function and the files, then the runner."""
    from airflow_provider_lightning.api.results import ERROR_KEY, RESULT_ENV

    constants = {
        "NAME": source.name,
        "SOURCE": source.code,
        "FILENAME": source.filename,
        "FIRST_LINE": source.first_line,
        "ARGS_ENV": ARGS_ENV,
        "RESULT_ENV": RESULT_ENV,
        "ERROR_KEY": ERROR_KEY,
        "MAX_RESULT_BYTES": max_result_bytes,
    }
    # ascii(): one line of pure ASCII per constant, whatever the source holds
    header = "".join(f"{key} = {value!a}\n" for key, value in constants.items())
    return f"# The @task.lightning runner of {source.name}\n{header}{_RUNNER_BODY}"


def heredoc_delimiter(text: str) -> str:
    """A here-document delimiter that does not occur anywhere in ``text``."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    delimiter, attempt = f"{_DELIMITER_BASE}_{digest}", 0
    while delimiter in text:
        attempt += 1
        delimiter = f"{_DELIMITER_BASE}_{digest}_{attempt}"
    return delimiter


def build_command(script: str, *, python: str = "python3", requirements: Sequence[str] = ()) -> str:
    """The shell command: install the requirements, then feed the script to ``python -`` as a here-document."""
    steps = []
    if requirements:
        steps.append(f"{python} -m pip install --quiet {' '.join(shlex.quote(r) for r in requirements)}")
    delimiter = heredoc_delimiter(script)
    steps.append(f"{python} - <<'{delimiter}'")
    body = script if script.endswith("\n") else script + "\n"
    return " && ".join(steps) + "\n" + body + delimiter + "\n"


def _check_python(python: Any) -> str:
    if not isinstance(python, str) or not python.strip() or any(c in python for c in "\n\r\0"):
        raise ValueError(f"python must be the interpreter command to run in the job (like 'python3'), got {python!r}")
    return python.strip()


def _check_requirements(requirements: Any, *, allow_templates: bool) -> list[str]:
    if requirements is None:
        return []
    if isinstance(requirements, str) or not isinstance(requirements, (list, tuple)):
        raise ValueError(
            f"requirements must be a list of pip requirement strings (one per item), got {requirements!r}"
        )
    for item in requirements:
        if allow_templates and is_template(item):
            continue
        if not isinstance(item, str) or not item.strip() or any(c in item for c in "\n\r\0"):
            raise ValueError(f"requirements must be non-empty pip requirement strings on one line, got {item!r}")
    return [item.strip() for item in requirements]


# -- the arguments -----------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    """Lazy XCom sequences (a mapped task's results) and other read-only mappings/sequences as JSON values."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_arguments(function_name: str, args: Sequence[Any], kwargs: Mapping[str, Any],
                     parameter_names: Sequence[str] = ()) -> str:
    """The arguments as the JSON of ``AIRFLOW_LIGHTNING_ARGS``; ValueError naming the first that is not JSON."""
    named: list[tuple[str, Any]] = [
        (f"argument {parameter_names[i]!r}" if i < len(parameter_names) else f"positional argument {i}", value)
        for i, value in enumerate(args)
    ]
    named += [(f"argument {key!r}", value) for key, value in kwargs.items()]
    for what, value in named:
        try:
            json.dumps(value, default=_json_default)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{what} of {function_name}() is not JSON-serialisable ({type(value).__name__}: {error}): "
                "@task.lightning sends the arguments to the job as JSON, so pass strings, numbers, booleans, None "
                "and lists or dicts of them (for large data, a path on the teamspace drive)"
            ) from None
    text = json.dumps({"args": list(args), "kwargs": dict(kwargs)}, default=_json_default)
    size = len(text.encode())
    if size > MAX_ARGS_BYTES:
        raise ValueError(
            f"the arguments of {function_name}() are {size} bytes of JSON, more than the {MAX_ARGS_BYTES} an "
            "environment variable of the job can hold: write large inputs to the teamspace drive and pass their path"
        )
    return text


# -- the operator ------------------------------------------------------------------------------


class _LightningDecoratedOperator(DecoratedOperator, LightningJobOperator):
    """Runs the decorated function as a Lightning job; the task returns the function's return value.

    :param python_callable: the function (its source runs in the job: it must import what it uses).
    :param requirements: pip requirements to install in the job before running the function (templated).
    :param python: the Python interpreter command in the job (default ``python3``).
    :param op_args: positional arguments (JSON values; templated, XComArgs are resolved).
    :param op_kwargs: keyword arguments (JSON values; templated, XComArgs are resolved).

    Also takes every argument of :class:`~airflow_provider_lightning.operators.jobs.LightningJobOperator` but
    ``command`` (built from the function), ``read_result`` (always on) and ``wait_for_completion`` (always on).
    """

    custom_operator_name = "@task.lightning"
    template_fields: Sequence[str] = (
        *DecoratedOperator.template_fields,
        *(field for field in LightningJobOperator.template_fields if field != "command"),
        "requirements",
    )
    template_fields_renderers = {
        **LightningJobOperator.template_fields_renderers,
        **DecoratedOperator.template_fields_renderers,
        "requirements": "py",
    }

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        requirements: Sequence[str] | None = None,
        python: str = "python3",
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("command", None):
            raise ValueError("@task.lightning builds the job's command from the function: do not pass command=")
        for flag in ("read_result", "wait_for_completion"):
            if kwargs.pop(flag, True) is not True:
                raise ValueError(
                    f"@task.lightning always waits for the job and returns its result: {flag} must be True"
                )
        entrypoint = kwargs.get("entrypoint")
        if entrypoint and not is_template(entrypoint) and not _runs_with_shell(entrypoint):
            raise ValueError(f"@task.lightning needs {_ENTRYPOINT_HINT}, got entrypoint={entrypoint!r}")
        env = kwargs.get("env")
        if isinstance(env, Mapping) and ARGS_ENV in env:
            raise ValueError(f"env must not set {ARGS_ENV}: @task.lightning passes the function's arguments in it")
        source = function_source(python_callable)  # a lambda or REPL function fails here, at DAG parse time
        _check_python(python)
        _check_requirements(requirements, allow_templates=True)
        super().__init__(
            python_callable=python_callable, command=_PENDING_COMMAND, read_result=True, wait_for_completion=True,
            **kwargs,
        )
        self.requirements = requirements  # stored as given: Airflow renders template fields in place
        self.python = python
        self._function_source = source

    def get_python_source(self) -> str:
        """The function's source as the job runs it (dedented, without decorators)."""
        return self._function_source.code

    # -- execution -----------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        # Templates are rendered and XComArgs resolved by now: check and encode everything before any request.
        self.command, self.env = self._job_command(), self._job_env(context)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """After the deferred wait: the function's result, with DecoratedOperator's handling of outputs."""
        return self._handle_output(return_value=super().execute_complete(context, event))

    def _job_command(self) -> str:
        from airflow_provider_lightning.api.results import check_max_bytes

        script = runner_script(self._function_source, max_result_bytes=check_max_bytes(self.max_result_bytes))
        command = build_command(script, python=_check_python(self.python),
                                requirements=_check_requirements(self.requirements, allow_templates=False))
        size = len(command.encode())
        if size > MAX_COMMAND_BYTES:
            raise ValueError(
                f"the job command for {self._function_source.name}() is {size} bytes, more than {MAX_COMMAND_BYTES}: "
                "keep the function small and put large code in a module the job imports (a Studio or an image)"
            )
        return command

    def _job_env(self, context: Context) -> dict[str, Any]:
        env = self.env if self.env is not None else {}
        if not isinstance(env, Mapping):
            raise ValueError(f"env must be a dict of str to str, got {type(env).__name__}")
        if ARGS_ENV in env:
            raise ValueError(f"env must not set {ARGS_ENV}: @task.lightning passes the function's arguments in it")
        args, kwargs = list(self.op_args), dict(self.op_kwargs)
        signature = inspect.signature(self.python_callable)
        names = [p.name for p in signature.parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        given = set(names[: len(args)]) | set(kwargs)
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or parameter.name in given:
                continue
            if parameter.name in context:
                raise ValueError(
                    f"parameter {parameter.name!r} of {self._function_source.name}() is an Airflow context variable, "
                    "which a Lightning job does not get: pass the value as an argument, for example "
                    f"{parameter.name}=\"{{{{ {parameter.name} }}}}\" for a templated string"
                )
        return {**env, ARGS_ENV: encode_arguments(self._function_source.name, args, kwargs, names)}


def _runs_with_shell(entrypoint: str) -> bool:
    """Whether an image entrypoint runs the command as a shell script (``sh -c``, ``bash -lc``)."""
    try:
        words = shlex.split(entrypoint)
    except ValueError:
        return False
    return len(words) >= 2 and words[-1].startswith("-") and words[-1].endswith("c")


def lightning_task(
    python_callable: Callable | None = None,
    multiple_outputs: bool | None = None,
    **kwargs: Any,
) -> TaskDecorator:
    """Run the decorated function as a Lightning AI job: ``@task.lightning(studio="my-studio", machine="A100")``.

    The function's return value (JSON) becomes the task's return value; its prints stream into the task log;
    an exception in the job fails the task with the remote traceback. The function runs in the job without its
    decorators and without the DAG file's globals: it imports what it uses itself. Arguments must be JSON
    values (a drive path for large data).

    :param python_callable: the function to decorate.
    :param multiple_outputs: push each key of a returned dict as its own XCom.
    :param requirements: pip requirements installed in the job first.
    :param python: the interpreter command in the job (default ``python3``).

    Other keyword arguments are those of
    :class:`~airflow_provider_lightning.operators.jobs.LightningJobOperator` (``image`` or ``studio``, ``machine``,
    ``env``, ``num_machines``, ``artifacts_destination``, ``deferrable``, ``timeout``, ``retries``, ...), except
    ``command``.
    """
    factory = task_decorator_factory(
        python_callable=None,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_LightningDecoratedOperator,
        **kwargs,
    )

    def decorate(function: Callable[..., Any]) -> Any:
        decorator = factory(function)
        decorator.__class__ = _mapped_with_release(type(decorator))  # .partial/.override keep the class
        return decorator

    return cast("TaskDecorator", decorate if python_callable is None else decorate(python_callable))


_RELEASING: dict[type, type] = {}


def _mapped_with_release(decorator_type: type) -> type:
    """Airflow's task decorator class, whose mapped tasks also get the worker-death failure callback.

    A plain task gets it in the operator's ``__init__`` (see ``operators.orphans``); a mapped decorated task is
    built by the decorator's ``_expand`` without ``__init__`` or ``partial``, so its ``partial_kwargs`` gain it
    there, after Airflow merged the DAG's ``default_args``.
    """
    if decorator_type not in _RELEASING:

        def _expand(self: Any, expand_input: Any, *, strict: bool) -> Any:
            from airflow_provider_lightning.operators.orphans import with_release

            result = decorator_type._expand(self, expand_input, strict=strict)  # type: ignore[attr-defined]
            arguments = result.operator.partial_kwargs
            arguments["on_failure_callback"] = with_release(arguments.get("on_failure_callback"))
            return result

        _RELEASING[decorator_type] = type("LightningTaskDecorator", (decorator_type,), {"_expand": _expand})
    return _RELEASING[decorator_type]


__all__ = ["ARGS_ENV", "FunctionSource", "build_command", "encode_arguments", "function_source", "heredoc_delimiter",
           "lightning_task", "runner_script"]
