"""Bytecode line probes in the project's interpreters (3.11, 3.12): the same program, the lines a tracer sees.

A rewriting bug would not fail politely: a jump one instruction off runs
the wrong code, a wrong stack size or table crashes the interpreter. So each
check runs ``probe_check.py`` in a fresh project interpreter and compares
against what CPython itself says of the original code.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.engine

CHECK = Path(__file__).with_name("probe_check.py")
SUITES = (
    "test_generators", "test_coroutines", "test_exceptions", "test_with", "test_contextlib", "test_contextlib_async",
    "test_patma", "test_sys_settrace", "test_exception_group", "test_grammar", "test_scope", "test_asyncgen",
    "test_dataclasses",
)  # fmt: skip
"""CPython's own tests of control flow, generators, coroutines and tracing (a few seconds in all)."""


def check(python: str, *args: str, timeout: float = 240) -> dict[str, Any]:
    proc = subprocess.run([python, str(CHECK), *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def stdlib_files(python: str) -> list[str]:
    listing = subprocess.run(
        [python, "-c", "import glob, os; d = os.path.dirname(os.__file__); "
         "print('\\n'.join(sorted(glob.glob(d + '/*.py')) + sorted(glob.glob(d + '/asyncio/*.py'))))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return listing.stdout.split()


def test_every_stdlib_module_rewrites_to_the_same_program(project_python: str) -> None:
    """Regression: a jump, handler or position moved to the wrong instruction by the rewrite.

    Every code object of the standard library's top level and asyncio, with
    its probes taken out, has the same instructions and arguments, each jump
    and exception handler lands where it did (on the probe in front, if any),
    and each instruction keeps its source position.
    """
    files = stdlib_files(project_python)
    assert len(files) > 150, files[:5]
    got = check(project_python, "verify", *files)
    assert got["failures"] == [] and got["skipped"] == 0, got
    assert got["codes"] > 5000


def test_probed_code_runs_the_same_and_records_what_a_tracer_sees(project_python: str, tmp_path: Path) -> None:
    """Regression: probed code computing something else, or its lines differing from coverage.py's.

    Loops with else/break/continue, nested handlers, return in finally,
    except*, with, generators with send/throw and yield from, async for/with,
    match, comprehensions, closures, multi-line expressions and calls, class
    bodies, recursion, jumps that outgrow their EXTENDED_ARG, more than 256
    constants: each call gives the same result probed and plain, and the
    probes record exactly the lines a ``sys.settrace`` function sees.
    """
    got = check(project_python, "corpus", str(tmp_path))
    assert got == {"calls": got["calls"], "skipped": [], "mismatches": []}
    assert got["calls"] >= 25


def test_cpython_control_flow_suites_pass_probed(project_python: str) -> None:
    """Regression: a construct the corpus misses, crashing or misbehaving once probed (CPython's own tests)."""
    has_tests = subprocess.run([project_python, "-c", "import test.test_generators"], capture_output=True, check=False)
    if has_tests.returncode != 0:
        pytest.skip(f"{project_python} has no CPython test package (Lib/test)")
    got = check(project_python, "suite", *SUITES, timeout=600)
    assert got["failures"] == [] and got["skipped"] == [], got
    assert got["run"] > 1000 and got["recorded"] > 10000


def test_code_compiled_under_a_workspace_name_is_probed_with_its_callers_futures(project_python: str, tmp_path: Path) -> None:
    """Regression: Jinja templates (compiled with their file's name) missing from coverage, or ``compile`` wrapped
    so that it takes the wrapper's ``__future__`` flags instead of its caller's."""
    got = check(project_python, "compile", str(tmp_path))
    assert got["lines"] == [1, 2, 4]  # the def, its body (called once), the call
    assert got["annotations"] == {"x": "Undefined", "return": "str"}  # the caller's `annotations` future
    assert got["without_future"] == "NameError" and got["ast"] == "Expression"


def test_a_module_imported_before_the_probes_start_gets_one_part_of_the_map(project_python: str, tmp_path: Path) -> None:
    """Regression: each function of a module imported before ``start`` got a part of the map sized to reach its
    own last line, so a file had one part for every function further down it (Click's core.py eight), and
    every take had to join them. Arms: the lines of both functions, in one part."""
    got = check(project_python, "early", str(tmp_path))
    assert got["ran"] == [1, 2]
    assert got["lines"] == [[0, [2, 204]]] and got["parts"] == 1
