"""Real third-party test suites for the benchmarks, prepared reproducibly.

This module owns `bench/.work/` (git-ignored scratch):

    bench/.work/sdist/<dist>-<version>.tar.gz   the sdist, from `pip download --no-binary :all:`
    bench/.work/src/<dist>-<version>/           the unpacked sdist: the pytest rootdir of the suite
    bench/.work/venvs/<name>/                   the suite's own venv (default `python3`), with the
                                                suite installed editable, its test needs, pytest,
                                                pytest-xdist and coverage, all at exact versions

`prepare(name)` downloads, unpacks, creates the venv and installs, once: a marker
file in the venv records the recipe it was built from, so a second call with an
unchanged recipe returns at once, and a changed recipe rebuilds the venv.
tach-ls is never installed into these venvs (its engine runs in the project's
interpreter without it).

Stdlib only; importable by the other bench scripts (`from suites import prepare`
with `bench/` on `sys.path`, as when they run as `python bench/NAME.py`), and
runnable: `python bench/suites.py [NAME...] [--collect]`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
SDIST_DIR = WORK_DIR / "sdist"
SRC_DIR = WORK_DIR / "src"
VENV_DIR = WORK_DIR / "venvs"
MARKER_NAME = ".tach-bench-prepared"

# Variables that change what pytest or Python do, removed from every suite's environment.
_DROPPED_ENV = (
    "PYTHONDONTWRITEBYTECODE",  # a user's machine writes .pyc files
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "PYTEST_XDIST_AUTO_NUM_WORKERS",
    "TACH_LS_CACHE_DIR",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
)


class SuiteError(SystemExit):
    """A suite cannot be prepared; exits with its message when not caught."""


@dataclass(frozen=True)
class Suite:
    """One prepared suite: where it is and how to run its tests."""

    name: str  # "flask", "click", "seaborn"
    root: Path  # unpacked sdist folder (the pytest rootdir), under bench/.work/src/
    python: Path  # the suite's own venv interpreter, bench/.work/venvs/<name>/bin/python
    test_args: list[str]  # pytest args selecting the tests the engine bench runs, relative to root
    env: dict[str, str]  # environment to run every command with
    # pytest args for the discovery bench (the whole suite); equals test_args except for seaborn.
    discovery_args: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Recipe:
    """How to build one suite: the sdist, the exact pins, the args and the environment."""

    dist: str  # the PyPI project name
    version: str  # exact; never replaced by another
    module: str  # imported once after install, as a check
    requirements: tuple[str, ...]  # exact pins installed next to the editable suite
    test_args: tuple[str, ...]
    discovery_args: tuple[str, ...]
    extra_env: tuple[tuple[str, str], ...] = ()

    def fingerprint(self) -> str:
        """Text that changes when anything the venv depends on changes."""
        return json.dumps({"recipe": asdict(self), "python": _base_python_version()}, sort_keys=True)


def _tooling(pytest_version: str) -> tuple[str, ...]:
    """pytest, pytest-xdist, coverage and their dependencies, pinned."""
    return (
        f"pytest=={pytest_version}",
        "pytest-xdist==3.8.0",
        "execnet==2.1.2",
        "coverage==7.17.3",
        "iniconfig==2.3.1",
        "packaging==26.3",
        "pluggy==1.7.0",
        "Pygments==2.21.0",
    )


SUITES: dict[str, Recipe] = {
    # Flask's "tests" dependency group: asgiref, greenlet, pytest, python-dotenv.
    # Werkzeug 3.1.7+ fails test_reqctx.py::test_bad_environ_raises_bad_request, so 3.1.6.
    "flask": Recipe(
        dist="flask",
        version="3.1.3",
        module="flask",
        requirements=_tooling("9.0.3")
        + (
            "asgiref==3.13.0",
            "greenlet==3.5.6",
            "python-dotenv==1.2.4",
            "blinker==1.9.0",
            "click==8.5.1",
            "itsdangerous==2.2.0",
            "Jinja2==3.1.6",
            "MarkupSafe==3.0.4",
            "Werkzeug==3.1.6",
        ),
        test_args=("tests",),
        discovery_args=("tests",),
    ),
    # Click's "tests" dependency group is pytest alone. Its pytest config has
    # addopts = "-m 'not stress'", which deselects the 31,000 stress cases.
    "click": Recipe(
        dist="click",
        version="8.5.1",
        module="click",
        requirements=_tooling("9.0.3"),
        test_args=("tests",),
        discovery_args=("tests",),
    ),
    # seaborn's "stats" extra plus its core dependencies, at versions of its release
    # (January 2024). pytest 9 turns tests/test_base.py's marked fixture into a
    # collection error, so pytest 8.4.2; pyparsing 3.2+ floods matplotlib 3.8 warnings.
    "seaborn": Recipe(
        dist="seaborn",
        version="0.13.2",
        module="seaborn",
        requirements=_tooling("8.4.2")
        + (
            "numpy==1.26.4",
            "pandas==2.2.3",
            "matplotlib==3.8.4",
            "scipy==1.13.1",
            "statsmodels==0.14.4",
            "contourpy==1.3.3",
            "cycler==0.12.1",
            "fonttools==4.68.0",
            "kiwisolver==1.5.1",
            "patsy==1.0.3",
            "pillow==10.4.0",
            "pyparsing==3.1.4",
            "python-dateutil==2.9.0.post0",
            "pytz==2026.6",
            "six==1.17.0",
            "tzdata==2026.6",
        ),
        test_args=("tests/_core",),
        discovery_args=("tests",),
        extra_env=(("MPLBACKEND", "Agg"),),
    ),
}


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"[suites] {message}", file=sys.stderr, flush=True)


@functools.cache
def _base_python() -> str:
    """The default `python3` that every suite venv is created with."""
    found = shutil.which("python3")
    if found is None:
        raise SuiteError("bench/suites.py: no python3 on PATH to create the suite venvs with")
    return found


@functools.cache
def _base_python_version() -> str:
    out = subprocess.run(
        [_base_python(), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _pip(python: str | Path, args: Sequence[str], quiet: bool) -> subprocess.CompletedProcess[str]:
    """Run pip; its output goes to stderr unless quiet (then it is captured for errors)."""
    cmd = [str(python), "-m", "pip", "--disable-pip-version-check", *args]
    if quiet:
        return subprocess.run(cmd, capture_output=True, text=True, check=False)
    return subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, text=True, check=False)


def _available_versions(dist: str) -> str:
    out = subprocess.run(
        [_base_python(), "-m", "pip", "index", "versions", dist],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Available versions:\s*(.*)", out.stdout)
    return match.group(1).strip() if match else "(pip index versions found none)"


def _find_sdist(recipe: Recipe) -> Path | None:
    prefix = f"{recipe.dist.lower()}-{recipe.version}."
    for path in sorted(SDIST_DIR.glob("*")):
        if path.name.lower().startswith(prefix) and path.name.endswith((".tar.gz", ".zip")):
            return path
    return None


def _download(recipe: Recipe, quiet: bool) -> Path:
    """The sdist of exactly `recipe.version`, downloaded once."""
    found = _find_sdist(recipe)
    if found is not None:
        return found
    SDIST_DIR.mkdir(parents=True, exist_ok=True)
    spec = f"{recipe.dist}=={recipe.version}"
    _log(f"downloading the sdist of {spec}", quiet)
    result = _pip(
        _base_python(),
        ["download", "--no-deps", "--no-binary", ":all:", spec, "-d", str(SDIST_DIR)],
        quiet=True,
    )
    found = _find_sdist(recipe)
    if result.returncode != 0 or found is None:
        raise SuiteError(
            f"bench/suites.py: cannot get the sdist of {spec} (exact version required, none other is used).\n"
            f"Available versions of {recipe.dist}: {_available_versions(recipe.dist)}\n"
            f"pip said:\n{result.stderr.strip()[-2000:]}"
        )
    return found


def _unpack(recipe: Recipe, archive: Path, root: Path, quiet: bool) -> None:
    """Unpack the sdist into `root` (atomically: a temporary folder, then a rename)."""
    if root.is_dir():
        return
    _log(f"unpacking {archive.name} to {root}", quiet)
    SRC_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=SRC_DIR, prefix=".unpack-") as tmp:
        if archive.name.endswith(".zip"):
            shutil.unpack_archive(archive, tmp)
        else:
            with tarfile.open(archive) as tar:
                if hasattr(tarfile, "data_filter"):  # 3.11.4+
                    tar.extractall(tmp, filter="data")
                else:
                    tar.extractall(tmp)
        tops = [p for p in Path(tmp).iterdir() if p.is_dir()]
        if len(tops) != 1:
            raise SuiteError(f"bench/suites.py: {archive.name} does not hold one top folder: {tops}")
        tops[0].rename(root)


def _build_venv(recipe: Recipe, root: Path, venv: Path, quiet: bool) -> None:
    """A fresh venv with the suite installed editable and every pin of the recipe."""
    if venv.exists():
        shutil.rmtree(venv)
    _log(f"creating {venv} with {_base_python()} ({_base_python_version()})", quiet)
    subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    args = ["install", *(["-q"] if quiet else []), "-e", str(root), *recipe.requirements]
    _log(f"pip install -e {root.name} + {len(recipe.requirements)} pinned requirements", quiet)
    result = _pip(python, args, quiet)
    if result.returncode != 0:
        raise SuiteError(f"bench/suites.py: pip install failed for {recipe.dist}:\n{(result.stderr or '')[-3000:]}")
    check = subprocess.run(
        [str(python), "-c", f"import pytest, xdist, coverage, {recipe.module}"],
        capture_output=True,
        text=True,
        cwd=venv,
        check=False,
    )
    if check.returncode != 0:
        raise SuiteError(f"bench/suites.py: the {recipe.dist} venv cannot import its tools:\n{check.stderr}")


def suite_env(recipe: Recipe, venv: Path) -> dict[str, str]:
    """The environment of every command run for a suite: as an activated venv on a user's machine."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(dict(recipe.extra_env))
    return env


def _suite(name: str, recipe: Recipe) -> Suite:
    root = SRC_DIR / f"{recipe.dist}-{recipe.version}"
    venv = VENV_DIR / name
    return Suite(
        name=name,
        root=root,
        python=venv / "bin" / "python",
        test_args=list(recipe.test_args),
        env=suite_env(recipe, venv),
        discovery_args=list(recipe.discovery_args),
    )


def _recipe(name: str) -> Recipe:
    try:
        return SUITES[name]
    except KeyError:
        raise SuiteError(f"bench/suites.py: unknown suite {name!r}; known: {', '.join(SUITES)}") from None


def prepare(name: str, *, quiet: bool = False) -> Suite:
    """Download, unpack, create the venv and install, unless already done for this recipe."""
    recipe = _recipe(name)
    suite = _suite(name, recipe)
    marker = VENV_DIR / name / MARKER_NAME
    fingerprint = recipe.fingerprint()
    if marker.is_file() and marker.read_text() == fingerprint and suite.root.is_dir() and suite.python.exists():
        return suite
    started = time.perf_counter()
    archive = _download(recipe, quiet)
    _unpack(recipe, archive, suite.root, quiet)
    _build_venv(recipe, suite.root, VENV_DIR / name, quiet)
    marker.write_text(fingerprint)
    _log(f"{name} prepared in {time.perf_counter() - started:.1f}s", quiet)
    return suite


@dataclass(frozen=True)
class TachInstall:
    """tach-ls as a user has it: its own venv (as pipx makes), not this machine's global site-packages."""

    python: Path  # the venv's interpreter (runs `-m tach_ls`, the server, the CLI)
    script: Path  # the `tach-ls` console script

    def cli(self, *args: str) -> list[str]:
        return [str(self.script), *args]


def prepare_tach(*, quiet: bool = False) -> TachInstall:
    """A venv with tach-ls's runtime dependencies and this checkout installed editable in compat mode.

    Why not the interpreter running the bench: this machine's global site-packages
    carries `.pth` files a user's machine does not (a sandbox hook that imports
    certifi, ~30 ms on every interpreter start), while each suite's venv is clean;
    timing tach-ls there would charge it a startup cost pytest never pays.
    Compat mode puts the checkout on `sys.path` with a plain path `.pth` (no import
    hook), so the venv always runs the working tree and a second call is instant.
    """
    venv = VENV_DIR / "tach-ls"
    marker = venv / MARKER_NAME
    repo = BENCH_DIR.parent
    pyproject = (repo / "pyproject.toml").read_text()
    fingerprint = f"{_base_python_version()}\n{pyproject}"
    install = TachInstall(python=venv / "bin" / "python", script=venv / "bin" / "tach-ls")
    if marker.is_file() and marker.read_text() == fingerprint and install.script.exists():
        return install
    if venv.exists():
        shutil.rmtree(venv)
    _log(f"creating {venv} (tach-ls from {repo}, editable in compat mode)", quiet)
    subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
    args = ["install", *(["-q"] if quiet else []), "--config-settings", "editable_mode=compat", "-e", str(repo)]
    result = _pip(install.python, args, quiet)
    if result.returncode != 0:
        raise SuiteError(f"bench/suites.py: pip install of tach-ls failed:\n{(result.stderr or '')[-3000:]}")
    marker.write_text(fingerprint)
    return install


def prepare_all(names: Iterable[str] | None = None) -> list[Suite]:
    """Prepare the named suites (default: all of SUITES), in order."""
    return [prepare(name) for name in (list(names) if names is not None else list(SUITES))]


def _disk_usage(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(dirpath) / name).lstat().st_size
            except OSError:
                pass
    return total


def _collect_summary(suite: Suite, args: Sequence[str]) -> str:
    """pytest's closing line of `--collect-only -q` for `args`, e.g. '2459/33459 tests collected (31000 deselected) in 1.6s'."""
    out = subprocess.run(
        [str(suite.python), "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=suite.root,
        env=suite.env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    return f"{lines[-1] if lines else '(no output)'} [exit {out.returncode}]"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Prepare the benchmark suites under bench/.work/.")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {', '.join(SUITES)}")
    parser.add_argument("--collect", action="store_true", help="also print pytest's collected counts")
    args = parser.parse_args(argv)
    for suite in prepare_all(args.names or None):
        size = (_disk_usage(suite.root) + _disk_usage(suite.python.parent.parent)) / 2**20
        print(f"{suite.name}: root={suite.root} python={suite.python} disk={size:.0f} MiB")
        if args.collect:
            for label, test_args in (("test_args", suite.test_args), ("discovery_args", suite.discovery_args)):
                print(f"  pytest --collect-only {' '.join(test_args)} ({label}): {_collect_summary(suite, test_args)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
