"""Line-level impact of an edit: each case runs the old and the new function for real.

For every input, the old version runs under a line tracer. The claim under
test: if the input executed none of the trigger lines, the new version
returns the same thing (or raises the same exception type); and an input
whose behaviour changed is always selected. Cases also pin how precise the
selection is, so that a change in an unexecuted branch selects nothing.
"""

from __future__ import annotations

import sys
import textwrap
from typing import Any

import pytest

from tach_ls.impact_diff import diff_sources


def _run(source: str, arg: Any) -> tuple[set[int], Any]:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<case>", "exec"), namespace)  # noqa: S102 - the cases below are the test's own code
    lines: set[int] = set()

    def tracer(frame: Any, event: str, _arg: Any) -> Any:
        if frame.f_code.co_filename == "<case>" and event == "line":
            lines.add(frame.f_lineno)
        return tracer

    sys.settrace(tracer)
    try:
        outcome: Any = ("value", namespace["f"](arg))
        if hasattr(outcome[1], "__next__"):
            outcome = ("value", list(outcome[1]))
    except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
        outcome = ("raises", type(exc).__name__)
    finally:
        sys.settrace(None)
    return lines, outcome


def selected_inputs(old: str, new: str, inputs: list[Any]) -> set[Any]:
    """Inputs whose old run executed a trigger line; asserts no other input changed behaviour."""
    old, new = textwrap.dedent(old), textwrap.dedent(new)
    change = diff_sources(old, new)
    assert change is not None and not change.module_level, change
    picked = set()
    for arg in inputs:
        lines, before = _run(old, arg)
        _, after = _run(new, arg)
        span, triggers = change.functions.get("f", ((0, 0), set()))
        hit = bool(lines & triggers) if triggers is not None else any(span[0] <= n <= span[1] for n in lines)
        if hit:
            picked.add(arg)
        else:
            assert before == after, f"input {arg!r} changed behaviour ({before} -> {after}) but was not selected"
    return picked


BRANCHY = """
def f(x):
    if x > 10:
        return "big"
    total = 0
    for i in range(x):
        total += i
    return total
"""


def test_a_change_in_a_branch_selects_only_inputs_that_took_it() -> None:
    assert selected_inputs(BRANCHY, BRANCHY.replace('"big"', '"huge"'), [0, 3, 11, 20]) == {11, 20}


def test_a_changed_condition_selects_everything_that_evaluated_it() -> None:
    assert selected_inputs(BRANCHY, BRANCHY.replace("x > 10", "x >= 3"), [0, 3, 11]) == {0, 3, 11}


def test_a_change_in_a_loop_body_selects_inputs_that_looped() -> None:
    assert selected_inputs(BRANCHY, BRANCHY.replace("total += i", "total += 2 * i"), [0, 1, 3, 11]) == {1, 3}


def test_an_insertion_selects_inputs_that_reached_its_neighbours() -> None:
    new = BRANCHY.replace("    total = 0\n", "    total = 0\n    if x == 0:\n        return -1\n")
    assert selected_inputs(BRANCHY, new, [0, 3, 11]) == {0, 3}


def test_an_insertion_at_the_top_of_a_branch_selects_inputs_that_entered_it() -> None:
    new = BRANCHY.replace('    if x > 10:\n', '    if x > 10:\n        x = -x\n')
    assert selected_inputs(BRANCHY, new, [0, 3, 11]) == {0, 3, 11}  # the `if` line ran for all: conservative


def test_a_statement_moved_out_of_a_branch_selects_inputs_that_skipped_it() -> None:
    old = """
    def f(x):
        y = 0
        if x:
            y = 1
            y += 10
        return y
    """
    new = """
    def f(x):
        y = 0
        if x:
            y = 1
        y += 10
        return y
    """
    assert selected_inputs(old, new, [0, 1]) == {0, 1}


ONE_KEY_DICT = """
def f(x):
    return (
        isinstance(x, dict)
        and len(x) == 1
        and "k" in x
    )
"""


def test_a_short_circuited_operand_selects_only_inputs_that_evaluated_it() -> None:
    old = ONE_KEY_DICT
    new = old.replace('"k" in x', '"k" not in x')
    change = diff_sources(textwrap.dedent(old), textwrap.dedent(new))
    assert change is not None
    for arg, expect in ((1, False), ({}, False), ({"k": 1}, True), ({"j": 1}, True)):
        lines, _ = _run(textwrap.dedent(old), arg)
        assert bool(lines & (change.functions["f"][1] or set())) is expect, arg


def test_a_new_local_that_shadows_a_global_selects_every_call() -> None:
    old = """
    LIMIT = 5

    def f(x):
        if x > 100:
            return 0
        return min(x, LIMIT)
    """
    new = old.replace("            return 0", "            LIMIT = 0\n            return 0")
    change = diff_sources(textwrap.dedent(old), textwrap.dedent(new))
    assert change is not None and change.functions["f"][1] is None  # every call now raises UnboundLocalError
    _, before = _run(textwrap.dedent(old), 1)
    _, after = _run(textwrap.dedent(new), 1)
    assert before != after


def test_becoming_a_generator_selects_every_call() -> None:
    old = """
    def f(x):
        if x > 100:
            return [x]
        return [1]
    """
    new = old.replace("return [x]", "yield x")
    change = diff_sources(textwrap.dedent(old), textwrap.dedent(new))
    assert change is not None and change.functions["f"][1] is None


def test_a_new_helper_local_that_nothing_read_keeps_line_precision() -> None:
    new = BRANCHY.replace('        return "big"', '        label = "big"\n        return label')
    assert selected_inputs(BRANCHY, new, [0, 3, 11]) == {11}


def test_signature_and_decorator_changes_select_every_call() -> None:
    change = diff_sources("def f(x, y=1):\n    return x + y\n", "def f(x, y=2):\n    return x + y\n")
    assert change is not None and change.functions["f"][1] is None


def test_exception_handlers() -> None:
    old = """
    def f(x):
        try:
            value = 10 // x
        except ZeroDivisionError:
            return "zero"
        return value
    """
    assert selected_inputs(old, old.replace('"zero"', '"nil"'), [0, 1, 2]) == {0}
    assert selected_inputs(old, old.replace("except ZeroDivisionError", "except ArithmeticError"), [0, 1]) == {0}


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ("X = 1\ndef f():\n    return X\n", "X = 2\ndef f():\n    return X\n", "module top level changed"),
        ("class C:\n    a = 1\n", "class C:\n    a = 2\n", "class C body changed"),
        ("def f():\n    pass\n", "def f():\n    pass\ndef g():\n    pass\n", "g was added"),
        ("def f():\n    pass\ndef g():\n    pass\n", "def f():\n    pass\n", "g was removed"),
    ],
)
def test_changes_that_run_at_import_are_module_level(old: str, new: str, why: str) -> None:
    change = diff_sources(old, new)
    assert change is not None and change.module_level == why


def test_docstring_and_comment_edits_change_nothing() -> None:
    old = 'def f(x):\n    """Doc."""\n    return x  # note\n'
    change = diff_sources(old, 'def f(x):\n    """Other doc."""\n    # a comment\n    return x\n')
    assert change is not None and not change.module_level and change.functions == {}


def test_unparsable_text_is_none() -> None:
    assert diff_sources("def f(:\n", "def f():\n    pass\n") is None


def test_a_changed_operator_counts_from_its_first_operand() -> None:
    """`a and b and c` -> `a and b or c` changes whether c runs when a is false: every input is selected."""
    old = ONE_KEY_DICT
    new = old.replace('and "k" in x', 'or "k" in x')
    assert selected_inputs(old, new, [1, 2, 3]) == {1, 2, 3}


def test_a_constant_of_another_type_but_equal_value_is_a_change() -> None:
    old = "def f(x):\n    if x:\n        return 1\n    return 0\n"
    assert selected_inputs(old, old.replace("return 1", "return 1.0"), [0, 1]) == {1}
    assert selected_inputs(old, old.replace("return 1", "return True"), [0, 1]) == {1}
