"""Each result names the workspace files its test opened and the endpoints it connected to.

Real workers, real audit hooks: the data file is opened through a relative
path after ``chdir``, the socket is a real loopback connection (inside the
worker's network namespace when isolation applies).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .conftest import EngineFactory, statuses


def test_results_carry_opened_files_and_endpoints(engine: EngineFactory, project: Callable[[str], Path]) -> None:
    eng = engine(project("impact_deps"))
    summary = eng.run("tests")
    assert set(statuses(summary).values()) == {"passed"}, summary
    by_id = {r.nodeid: r for r in summary.results}
    reader = by_id["tests/test_deps.py::test_reads_data_after_chdir"]
    assert "data/prices.csv" in reader.opened
    assert reader.endpoints == []
    client = by_id["tests/test_deps.py::test_connects_to_a_local_server"]
    assert len(client.endpoints) == 1 and client.endpoints[0].startswith("127.0.0.1:"), client.endpoints
    assert "data/prices.csv" not in client.opened
    quiet = by_id["tests/test_deps.py::test_touches_nothing"]
    assert quiet.endpoints == [] and "data/prices.csv" not in quiet.opened and not quiet.spawned
    assert by_id["tests/test_deps.py::test_starts_a_process"].spawned
