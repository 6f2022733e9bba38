"""pytest's configuration, resolved statically: rootdir, config file, collection options.

`resolve(args, invocation_dir)` finds the rootdir and config file the way
pytest's `determine_setup` does (pytest.toml, pytest.ini, pyproject.toml
`[tool.pytest]` or `[tool.pytest.ini_options]`, tox.ini, setup.cfg), reads the
options that decide what is collected, and parses `addopts` (and
`PYTEST_ADDOPTS`) for `--ignore`, `--ignore-glob`, `--deselect`, `-k`, `-m`,
`-o`, `--rootdir`, `-c` and positional paths.
"""

from __future__ import annotations

import configparser
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 ships tomli with pytest
    import tomli as tomllib

CONFIG_NAMES = ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
DEFAULT_NORECURSE = ["*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}"]
DEFAULT_PYTHON_FILES = ["test_*.py", "*_test.py"]

# Options whose value is a separate argument; the rest of an addopts string is
# flags we can ignore. Unknown options with values are handled by only taking
# positional arguments that exist on disk as paths.
_VALUE_OPTIONS = {
    "-k", "-m", "-p", "-c", "-o", "-W", "-n", "-r", "--ignore", "--ignore-glob", "--deselect",
    "--rootdir", "--confcutdir", "--override-ini", "--import-mode", "--basetemp", "--tb",
    "--maxfail", "--durations", "--junitxml", "--junit-xml", "--cov", "--cov-report",
    "--cov-config", "--timeout", "--dist", "--log-level", "--log-cli-level", "--log-format",
    "--capture", "--color", "--code-highlight", "--pythonwarnings", "--inifile",
    "--doctest-glob", "--durations-min", "--verbosity", "--reruns", "--random-order-seed",
    "--maxprocesses", "--numprocesses", "--asyncio-mode",
}  # fmt: skip


class ConfigError(Exception):
    """The project's pytest configuration cannot be read (pytest would fail too)."""


@dataclass
class PytestConfig:
    """What decides collection, as pytest would see it for one invocation."""

    rootdir: Path
    inifile: Path | None
    invocation_dir: Path
    ini: dict[str, Any] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # positional paths from addopts
    testpaths: list[str] = field(default_factory=list)
    python_files: list[str] = field(default_factory=lambda: list(DEFAULT_PYTHON_FILES))
    python_classes: list[str] = field(default_factory=lambda: ["Test"])
    python_functions: list[str] = field(default_factory=lambda: ["test"])
    norecursedirs: list[str] = field(default_factory=lambda: list(DEFAULT_NORECURSE))
    ignore: list[Path] = field(default_factory=list)
    ignore_glob: list[str] = field(default_factory=list)
    deselect: list[str] = field(default_factory=list)
    keyword: str | None = None
    markexpr: str | None = None
    collect_imported_tests: bool = True
    collect_in_virtualenv: bool = False
    escape_ids: bool = True
    confcutdir: Path | None = None
    warnings: list[str] = field(default_factory=list)
    consulted: list[Path] = field(default_factory=list)  # every config candidate looked at

    def fingerprint(self) -> str:
        """A string that changes whenever an option that affects collection changes."""
        parts = [
            str(self.rootdir), str(self.inifile), repr(self.args), repr(self.testpaths),
            repr(self.python_files), repr(self.python_classes), repr(self.python_functions),
            repr(self.norecursedirs), repr(self.ignore), repr(self.ignore_glob), repr(self.deselect),
            repr(self.keyword), repr(self.markexpr), repr(self.collect_imported_tests), repr(self.escape_ids),
        ]  # fmt: skip
        return "\x00".join(parts)


def load_config_file(path: Path) -> dict[str, Any] | None:
    """The pytest options in one config file, or None if it holds none (pytest's rules)."""
    try:
        if path.suffix == ".ini":
            parser = _ini_parser(path)
            if parser.has_section("pytest"):
                return dict(parser.items("pytest", raw=True))
            return {} if path.name in ("pytest.ini", ".pytest.ini") else None
        if path.suffix == ".cfg":
            parser = _ini_parser(path)
            if parser.has_section("tool:pytest"):
                return dict(parser.items("tool:pytest", raw=True))
            return None
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            if path.name in ("pytest.toml", ".pytest.toml"):
                return dict(data.get("pytest", {}))
            tool = data.get("tool", {}).get("pytest", {})
            native = {k: v for k, v in tool.items() if k != "ini_options"}
            if native:
                return native
            ini = tool.get("ini_options")
            if ini is not None:
                return {k: v if isinstance(v, list) else str(v) for k, v in ini.items()}
    except (OSError, UnicodeDecodeError, configparser.Error, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return None


def _ini_parser(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=", ":"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return parser


def locate_config(args: list[Path], consulted: list[Path] | None = None) -> tuple[Path | None, Path | None, dict[str, Any]]:
    """(rootdir, config file, options) for the first config file found upwards from the args."""
    first_pyproject: Path | None = None
    for arg in args:
        for base in (arg, *arg.parents):
            for name in CONFIG_NAMES:
                candidate = base / name
                if consulted is not None:
                    consulted.append(candidate)
                if candidate.is_file():
                    if name == "pyproject.toml" and first_pyproject is None:
                        first_pyproject = candidate
                    options = load_config_file(candidate)
                    if options is not None:
                        return base, candidate, options
    if first_pyproject is not None:
        return first_pyproject.parent, first_pyproject, {}
    return None, None, {}


def common_ancestor(invocation_dir: Path, paths: list[Path]) -> Path:
    existing = [p for p in paths if p.exists()]
    if not existing:
        return invocation_dir
    common = Path(os.path.commonpath([str(p) for p in existing]))
    if common.is_file():
        common = common.parent
    return common


def _dirs_from_args(args: list[str], invocation_dir: Path) -> list[Path]:
    out = []
    for arg in args:
        if arg.startswith("-"):
            continue
        path = Path(os.path.abspath(invocation_dir / arg.split("::")[0]))
        if path.exists():
            out.append(path if path.is_dir() else path.parent)
    return out


def determine_setup(
    args: list[str],
    invocation_dir: Path,
    inifile: str | None = None,
    rootdir_arg: str | None = None,
    consulted: list[Path] | None = None,
) -> tuple[Path, Path | None, dict[str, Any]]:
    """pytest's rootdir and config-file algorithm; every file it looked at goes to `consulted`."""
    dirs = _dirs_from_args(args, invocation_dir)
    rootdir: Path | None
    inipath: Path | None
    if inifile:
        inipath = Path(os.path.abspath(invocation_dir / inifile))
        if consulted is not None:
            consulted.append(inipath)
        ini = load_config_file(inipath) or {}
        rootdir = inipath.parent
    else:
        ancestor = common_ancestor(invocation_dir, dirs)
        rootdir, inipath, ini = locate_config([ancestor], consulted)
        if rootdir is None:
            for candidate in (ancestor, *ancestor.parents):
                if consulted is not None:
                    consulted.append(candidate / "setup.py")
                if (candidate / "setup.py").is_file():
                    rootdir = candidate
                    break
            else:
                if dirs != [ancestor]:
                    rootdir, inipath, ini = locate_config(dirs, consulted)
                if rootdir is None:
                    rootdir = common_ancestor(invocation_dir, [invocation_dir, ancestor])
                    if str(rootdir) == os.sep:
                        rootdir = ancestor
    if rootdir_arg:
        rootdir = Path(os.path.abspath(invocation_dir / os.path.expandvars(rootdir_arg)))
    assert rootdir is not None
    return rootdir, inipath, ini


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return shlex.split(str(value))


def _as_lines(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [line.strip() for line in str(value).splitlines() if line.strip()]


def _as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def parse_addopts(tokens: list[str]) -> dict[str, list[str]]:
    """Split addopts into the options that matter here and positional args."""
    found: dict[str, list[str]] = {"args": []}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok == "--":
            found["args"].extend(tokens[i:])
            break
        if not tok.startswith("-") or tok == "-":
            found["args"].append(tok)
            continue
        if tok.startswith("--"):
            name, eq, value = tok.partition("=")
            if not eq and name in _VALUE_OPTIONS:
                value = tokens[i] if i < len(tokens) else ""
                i += 1
            found.setdefault(name, []).append(value)
            continue
        # Short options: "-k expr", "-kexpr", "-m expr", "-o a=b", combined flags "-rxs".
        name, attached = tok[:2], tok[2:]
        if name in _VALUE_OPTIONS:
            if attached:
                value = attached[1:] if attached.startswith("=") else attached
            else:
                value = tokens[i] if i < len(tokens) else ""
                i += 1
            found.setdefault(name, []).append(value)
        else:
            found.setdefault(name, []).append("")
    return found


def resolve(
    args: list[str] | None = None,
    invocation_dir: Path | None = None,
    inifile: str | None = None,
    rootdir_arg: str | None = None,
    environ: dict[str, str] | None = None,
) -> PytestConfig:
    """The configuration pytest would use for `pytest ARGS` run in `invocation_dir`."""
    invocation_dir = Path(os.path.abspath(invocation_dir or Path.cwd()))
    environ = dict(os.environ) if environ is None else environ
    args = list(args or [])
    env_opts = shlex.split(environ.get("PYTEST_ADDOPTS", ""))
    early = parse_addopts(env_opts + args)
    inifile = inifile or next(reversed(early.get("-c") or early.get("--inifile") or []), None)
    rootdir_arg = rootdir_arg or next(reversed(early.get("--rootdir") or []), None)
    consulted: list[Path] = []
    rootdir, inipath, ini = determine_setup(early["args"], invocation_dir, inifile, rootdir_arg, consulted)
    addopts = _as_list(ini.get("addopts"))
    opts = parse_addopts(addopts + env_opts + args)
    for override in opts.get("-o", []) + opts.get("--override-ini", []):
        key, _, value = override.partition("=")
        if key:
            ini[key] = value
    cfg = PytestConfig(rootdir=rootdir, inifile=inipath, invocation_dir=invocation_dir, ini=ini)
    cfg.consulted = consulted
    cfg.args = parse_addopts(addopts + env_opts)["args"]  # positional args that came from addopts
    cfg.testpaths = _as_list(ini.get("testpaths"))
    if "python_files" in ini:
        cfg.python_files = _as_list(ini["python_files"])
    if "python_classes" in ini:
        cfg.python_classes = _as_list(ini["python_classes"])
    if "python_functions" in ini:
        cfg.python_functions = _as_list(ini["python_functions"])
    if "norecursedirs" in ini:
        cfg.norecursedirs = _as_list(ini["norecursedirs"])
    cfg.ignore = [Path(os.path.abspath(invocation_dir / p)) for p in opts.get("--ignore", [])]
    cfg.ignore_glob = [str(Path(os.path.abspath(invocation_dir / p))) for p in opts.get("--ignore-glob", [])]
    cfg.deselect = list(opts.get("--deselect", []))
    # Like argparse, the last -k / -m wins.
    if opts.get("-k"):
        cfg.keyword = opts["-k"][-1] or None
    if opts.get("-m"):
        cfg.markexpr = opts["-m"][-1] or None
    cfg.collect_imported_tests = _as_bool(ini.get("collect_imported_tests"), True)
    cfg.collect_in_virtualenv = "--collect-in-virtualenv" in opts
    cfg.escape_ids = not _as_bool(ini.get("disable_test_id_escaping_and_forfeit_all_rights_to_community_support"), False)
    if opts.get("--confcutdir"):
        cfg.confcutdir = Path(os.path.abspath(invocation_dir / opts["--confcutdir"][-1]))
    elif inipath is not None:
        cfg.confcutdir = inipath.parent
    if "--doctest-modules" in opts:
        cfg.warnings.append("--doctest-modules: doctests are not indexed statically; the engine collects them")
    return cfg
