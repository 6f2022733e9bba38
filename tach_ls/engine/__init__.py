"""Everything that runs tests: a warm zygote in the project's interpreter, and forked workers.

The one hard rule: modules marked *zygote side* run in the project's
interpreter and import only the standard library and pytest (and each other,
relatively); the supervisor starts them as ``<project python> zygote.py``,
which loads this folder as the private package ``_tach_engine``. Server-side
modules never get imported there.

Server side (the tach-ls process):

- ``supervisor``: ``Supervisor``, the public API: start, run with streamed
  results, cancel, status callback, shutdown; owns the loop thread.
- ``scheduler``: the run/worker half of the supervisor: selection, batches,
  results, crashes, timeouts, cancellation, zygote loss.
- ``layers``: the zygote's processes as seen from outside: start, freshness
  fingerprints, restarts with backoff, preload cache, spawn mode.
- ``runs``: ``RunRequest``, ``RunHandle`` (with a debug run's address
  future), ``RunSummary``, batching, slots.
- ``status``: ``EngineConfig``, ``EngineState``, ``EngineStatus``.
- ``interpreter``: find and check the project interpreter.
- ``coverage_feed``: workers' coverage rings mapped and drained, each test's
  lines onto its ``TestResult``, each run's ``RunCoverage``.
- ``ring_reader``: the supervisor's end of a coverage ring: entries grouped
  by test, line maps copied out.

Zygote side (the project's interpreter; stdlib + pytest only):

- ``zygote``: entry point; the base layer (pytest + preloaded third-party
  modules) that forks the collected layer; spawn mode's roles.
- ``collected``: the collected layer: real pytest collection, the item index,
  selection, the standby child (whose job pipe it hands to the supervisor)
  and forked workers, reaping.
- ``fork_worker``: the child: process group, death with parent, output
  files, faulthandler, pytest's runtest protocol per item, one result each.
- ``worker_status``: the worker's status record (which test of its batch,
  which phase, since when): one ``pwrite`` per phase instead of a message,
  read by the supervisor when a worker dies or may have timed out (both
  sides).
- ``debugger``: a debug worker's step before its test: debugpy listens,
  the address goes to the supervisor, the worker waits for the client.
- ``warmth``: what workers warmed lazily (modules, regexes) fed back to the
  collected layer so the next worker starts warmer.
- ``wire``: framed JSON messages over SEQPACKET sockets, dispatch by name.
- ``procutil``: PR_SET_PDEATHSIG, native thread count, exit statuses,
  workspace paths, fingerprints, prefaulting the standby's memory.
- ``results``: ``Status`` and ``TestResult`` (shared by both sides).
- ``namespaces``: worker isolation (private /tmp, project overlay, network,
  /proc guard): probed once in the base layer, entered by ``fork_worker``
  right after the fork; ``nsutil``: its system calls, the overlay's upper
  layer, the network guard.
- ``tracer``: per-test line collection (bytecode probes on 3.11 and 3.12,
  sys.monitoring on 3.13+, else the trace functions of ``tracefunc``:
  coverage.py's CTracer, sys.settrace), started in the collected layer,
  inherited by workers.
- ``probes``: the probe backend: workspace code objects rewritten as they
  load (import, pytest's assertion rewriter, ``compile``), a test's lines
  taken from one byte map; ``bytecode``: the rewrite itself (decode, place
  probes, re-encode jumps, exception and location tables).
- ``coverage_ring``: the shared-memory ring (a memfd made before each fork)
  that carries a worker's line hits to the supervisor: its layout and entry
  encoding; ``ring_writer``: the worker's end (the reader, ``ring_reader``,
  is server side).
"""
