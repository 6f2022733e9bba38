"""tach-ls: a pytest backend for editors and terminals.

Map of the package (see ../shared/DESIGN.md for the architecture):

Command line
    cli.py             tach-ls serve | run | list (each subcommand imported lazily)
    list_command.py    tach-ls list: the static index as node ids or JSON
    list_fastpath.py   list's warm path: the last output, if nothing it depended on changed
    run_command.py     tach-ls run: the engine, reports, --coverage/--lcov, --affected/--since/--explain

Static index (no import of the project)
    config.py          pytest's rootdir/config-file resolution and collection options
    walk.py            pytest's directory walk and ignore rules
    module_scan.py     one pass over a module's AST: what its __dict__ will hold
    static_eval.py     bounded static evaluation of parametrize expressions (follows imports)
    static_calls.py    the evaluator's calls: pytest.param, one-return functions, pure builtins; mark names
    paramids.py        pytest's parametrize ids (IdMaker rules)
    fixtures_static.py fixture definitions, requests, closures, parametrized fixtures
    discovery_inputs.py  what discovery takes: options, the outside-the-file context, parsing
    discovery_ast.py   pure: (path, source, options) -> items with node ids and ranges
    discovery_memo.py  a buffer's last discovery reused where what it read is unchanged
    selectexpr.py      pytest's -k / -m expression language
    incremental_parse.py  re-parse only the statements an edit touched (into class bodies)
    buffer_edits.py    per-buffer parse, memo, and the index moved without discovery after a body edit
    index.py           the workspace index: build, incremental updates, deselection
    index_cache.py     the persistent per-file index cache (marshal, atomic writes)
    index_parallel.py  a cold build on two cores (CLI only)
    model.py           TestItem, Collector, FixtureDef, FileError, FileIndex
    cachedir.py        the per-workspace cache folder .tach-ls/

Language server (thin handlers over pure modules)
    server.py          pygls handlers only
    stdio_frames.py    stdin as whole JSON-RPC frames, one hop to the event loop per message
    protocol.py        tach/* method names and one dataclass per custom message
    folders.py         the workspace folders of a session (multi-root)
    workspace.py       one folder's state: index, engine, buffers, results, diagnostics
    runner.py          runs as the editor sees them: streaming, progress, run on save, cancel
    views.py           test tree and code lenses from the index
    positions.py       LSP positions (0-based, UTF-16) from the index's lines
    linemap.py         line numbers across versions of a text (results follow edits)
    settings.py        tach-ls settings: defaults < editor < [tool.tach-ls]
    watch.py           watchfiles on each root: re-index, forget deleted files, tell the engine
    engine_factory.py  the real engine for a workspace
    uris.py            file URIs <-> paths

Coverage and impact analysis
    coverage_data.py   a run's executed lines -> covered/missed/executable per file (coverage.py's analysis)
    coverage_index.py  which tests covered which lines (for hovers)
    fingerprints.py    code blocks of a file and their AST fingerprints
    impact.py          the impact store (SQLite) and the selection rules
    impact_env.py      the environment key and git change detection
    impact_session.py  recording runs and selecting affected tests, for the CLI and the server

engine/               everything that runs tests (zygote side: stdlib + pytest only): see engine/__init__.py
report/               human, ndjson, junit, lcov, coverage table, diagnostics
"""

__version__ = "0.1.0"
