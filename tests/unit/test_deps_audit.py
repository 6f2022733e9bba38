"""The audit-hook recorder sees workspace files (relative paths after chdir too) and connections.

It runs in a child process: audit hooks cannot be removed, so installing one
in the test process would leak into every other test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_records_files_and_endpoints_only_while_active(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "table.csv").write_text("x")
    (tmp_path / "before.txt").write_text("x")
    code = textwrap.dedent(
        f"""
        import json, os, socket, sys
        sys.path.insert(0, {str(ROOT / "tach_ls" / "engine")!r})
        import deps_audit
        root = {str(tmp_path)!r}
        deps_audit.install(root)
        open(os.path.join(root, "before.txt")).close()   # not active yet: not recorded
        deps_audit.start()
        os.chdir(os.path.join(root, "data"))
        open("table.csv").close()                          # relative, after chdir
        open("/etc/hostname").close() if os.path.exists("/etc/hostname") else None  # outside: ignored
        s = socket.socket()
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", 9))                    # refused or not: the attempt is recorded
        except OSError:
            pass
        s.close()
        files, endpoints, spawned = deps_audit.stop()
        open(os.path.join(root, "before.txt")).close()   # stopped: not recorded
        deps_audit.start()
        import subprocess
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        spawned_later = deps_audit.stop()[2]
        print(json.dumps([files, endpoints, spawned, spawned_later]))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    files, endpoints, spawned, spawned_later = json.loads(out.stdout)
    assert files == ["data/table.csv"]
    assert endpoints == ["127.0.0.1:9"]
    assert (spawned, spawned_later) == (False, True), "a test that starts a process is flagged"
