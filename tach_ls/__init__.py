"""tach-ls: a pytest backend for editors and terminals.

Map of the package (see ../shared/DESIGN.md for the architecture):

    cli.py            tach-ls serve | run | list (each subcommand imported lazily)
    list_command.py   tach-ls list: the static index as node ids or JSON
    run_command.py    tach-ls run: runs tests through the engine, reports
    server.py         pygls handlers only
    config.py         pytest's rootdir/config-file resolution and collection options
    cachedir.py       the per-workspace cache folder .tach-ls/
    model.py          TestItem, Collector, FixtureDef, FileError, FileIndex
    static_eval.py    bounded static evaluation of parametrize expressions
    paramids.py       pytest's parametrize ids (IdMaker rules)
    module_scan.py    one pass over a module's AST: what its __dict__ will hold
    fixtures_static.py fixture definitions, requests, closures, parametrized fixtures
    discovery_ast.py  pure: (path, source, options) -> items with node ids and ranges
    selectexpr.py     pytest's -k / -m expression language
    walk.py           pytest's directory walk and ignore rules
    index_cache.py    the persistent per-file index cache (marshal, atomic writes)
    index.py          the workspace index: build, incremental updates, deselection
    engine/           everything that runs tests (zygote side: stdlib + pytest only)
    report/           human, ndjson, junit, lcov output
"""

__version__ = "0.1.0"
