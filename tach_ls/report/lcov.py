"""``--lcov FILE``: line coverage in the LCOV tracefile format that CI tools and editors read.

One record per file, in path order: ``SF:`` (the path relative to the
workspace root, as coverage.py's ``lcov`` report writes it), one ``DA:line,hits``
per executable line, ``LF:`` lines found and ``LH:`` lines hit, then
``end_of_record``. Hit counts are 1 or 0: the tracer records that a line ran
in a test, not how many times (it stops listening to a line after its first
hit, which is what makes it cheap).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tach_ls.coverage_data import FileReport


def render(reports: Mapping[str, FileReport], test_name: str = "") -> str:
    out = [f"TN:{test_name}"] if test_name else []
    for rel, report in sorted(reports.items()):
        out.append(f"SF:{rel}")
        hit = set(report.covered)
        lines = sorted(set(report.executable) | hit)
        out.extend(f"DA:{line},{1 if line in hit else 0}" for line in lines)
        out.append(f"LF:{len(lines)}")
        out.append(f"LH:{len(hit)}")
        out.append("end_of_record")
    return "\n".join(out) + "\n"


def write(path: Path, reports: Mapping[str, FileReport]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(reports), encoding="utf-8")
