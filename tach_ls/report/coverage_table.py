"""The terminal's coverage section: one row per file, as coverage.py's ``report`` prints it.

``Name Stmts Miss Cover Missing`` with missed lines folded into ranges, then
a TOTAL row. The human reporter prints it just before its closing line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tach_ls.coverage_data import FileReport, totals


def ranges(lines: Iterable[int]) -> str:
    """'3-5, 9' from [3, 4, 5, 9]."""
    out: list[str] = []
    start = previous = None
    for line in sorted(lines):
        if previous is not None and line == previous + 1:
            previous = line
            continue
        if start is not None:
            out.append(f"{start}-{previous}" if previous != start else f"{start}")
        start = previous = line
    if start is not None:
        out.append(f"{start}-{previous}" if previous != start else f"{start}")
    return ", ".join(out)


def render(reports: Mapping[str, FileReport], title: str = "coverage") -> str:
    name_width = max([len("Name"), len("TOTAL"), *(len(rel) for rel in reports)])
    rows = [f"{'Name':<{name_width}}  Stmts   Miss  Cover   Missing", "-" * (name_width + 32)]
    for rel, report in sorted(reports.items()):
        stmts = len(report.covered) + len(report.missed)
        rows.append(f"{rel:<{name_width}}  {stmts:>5}  {len(report.missed):>5}  {report.percent:>4.0f}%   {ranges(report.missed)}".rstrip())
    covered, executable = totals(reports)
    percent = 100.0 * covered / executable if executable else 100.0
    rows.append("-" * (name_width + 32))
    rows.append(f"{'TOTAL':<{name_width}}  {executable:>5}  {executable - covered:>5}  {percent:>4.0f}%")
    head = f"{'-' * 10} {title}: {len(reports)} files, {percent:.0f}% of {executable} lines {'-' * 10}"
    return "\n".join([head, *rows]) + "\n"
