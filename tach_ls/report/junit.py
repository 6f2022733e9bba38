"""``--junit-xml FILE``: JUnit XML in the shape pytest writes (one testsuite).

Statuses map as pytest maps them: failed, crashed and timeout are
``<failure>``; error is ``<error>``; skipped and xfailed are ``<skipped>``;
xpassed passes. Captured output goes to ``<system-out>``/``<system-err>``.
"""

from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tach_ls.engine.results import Status, TestResult
from tach_ls.engine.runs import RunSummary


class JunitReporter:
    def __init__(self, path: Path, suite_name: str = "pytest") -> None:
        self.path = path
        self.suite_name = suite_name
        self.results: list[TestResult] = []
        self.started = time.time()

    def start(self, total: int) -> None:
        self.started = time.time()

    def result(self, result: TestResult) -> None:
        self.results.append(result)

    def finish(self, summary: RunSummary) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(build(self.results, summary, self.suite_name, self.started)).write(
            self.path, encoding="utf-8", xml_declaration=True
        )


def _classname(nodeid: str) -> tuple[str, str]:
    parts = nodeid.split("::")
    module = parts[0].replace("/", ".").removesuffix(".py")
    return ".".join([module, *parts[1:-1]]), parts[-1]


def build(results: list[TestResult], summary: RunSummary, name: str, started: float) -> ET.Element:
    suites = ET.Element("testsuites")
    failures = sum(1 for r in results if r.status in (Status.FAILED, Status.CRASHED, Status.TIMEOUT))
    errors = sum(1 for r in results if r.status is Status.ERROR)
    skipped = sum(1 for r in results if r.status in (Status.SKIPPED, Status.XFAILED))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=name,
        errors=str(errors),
        failures=str(failures),
        skipped=str(skipped),
        tests=str(len(results)),
        time=f"{summary.duration_s:.3f}",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        hostname=socket.gethostname(),
    )
    for result in results:
        classname, test_name = _classname(result.nodeid)
        case = ET.SubElement(
            suite, "testcase", classname=classname, name=test_name, time=f"{result.duration_ms / 1000.0:.3f}"
        )
        if result.line is not None:
            case.set("file", result.path)
            case.set("line", str(result.line))
        body = result.longrepr or result.message
        if result.status in (Status.FAILED, Status.CRASHED, Status.TIMEOUT):
            ET.SubElement(case, "failure", message=f"[{result.status.value}] {result.message}").text = body
        elif result.status is Status.ERROR:
            ET.SubElement(case, "error", message=result.message).text = body
        elif result.status in (Status.SKIPPED, Status.XFAILED):
            ET.SubElement(case, "skipped", type="pytest.skip" if result.status is Status.SKIPPED else "pytest.xfail",
                          message=result.message)  # fmt: skip
        if result.stdout:
            ET.SubElement(case, "system-out").text = result.stdout
        if result.stderr:
            ET.SubElement(case, "system-err").text = result.stderr
    return suites
