/**
 * tach-ls's custom LSP vocabulary, mirroring `tach_ls/protocol.py`: the `tach/*`
 * notifications, the `tach.*` commands and one interface per message. Keep the
 * names in step with the Python side. Lines and characters are LSP's: 0-based,
 * columns in UTF-16 code units (the same as VS Code's).
 */

// -- notifications, server -> client ---------------------------------------------------------
export const TESTS_CHANGED = 'tach/testsChanged';
export const RUN_STARTED = 'tach/runStarted';
export const TEST_RESULT = 'tach/testResult';
export const RUN_FINISHED = 'tach/runFinished';
export const COVERAGE = 'tach/coverage';
export const STATUS = 'tach/status';

// -- commands (workspace/executeCommand) -----------------------------------------------------
export const CMD_RUN_TESTS = 'tach.runTests';
export const CMD_RUN_ALL = 'tach.runAll';
export const CMD_RUN_AFFECTED = 'tach.runAffected';
export const CMD_CANCEL = 'tach.cancel';
export const CMD_DEBUG_TEST = 'tach.debugTest';

/** A pytest node id, byte for byte (`tests/test_x.py::TestA::test_b[1-a]`). */
export type NodeId = string;
/** A 0-based line number. */
export type LineNo = number;

export interface Position {
  line: LineNo;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export type NodeKind = 'module' | 'class' | 'function' | 'method' | 'case';

/** One node of the test tree: a module, class, test function or parametrized case. */
export interface TestNode {
  id: NodeId;
  label: string;
  kind: NodeKind;
  uri: string;
  /** The whole definition, decorators included. */
  range: Range;
  /** The `def`/`class` line: where lenses and gutter icons go. */
  selection_line: LineNo;
  parent: NodeId | null;
  deselected?: boolean;
  dynamic?: boolean;
  markers?: string[];
}

export interface IndexError {
  message: string;
  line: LineNo | null;
  kind?: string;
}

/** The whole test tree of one file (replaces what the client had for `uri`). */
export interface TestsChanged {
  uri: string;
  version: number | null;
  tests: TestNode[];
  errors?: IndexError[];
}

/** Why a run started: `command`, `all`, `affected`, `save` or `debug`. */
export type RunReason = string;

export interface RunStarted {
  run_id: number;
  folder: string;
  /** The run's targets (node ids or paths); empty for the whole suite. */
  tests: string[];
  reason: RunReason;
}

export type TestStatus = 'passed' | 'failed' | 'skipped' | 'xfailed' | 'xpassed' | 'error' | 'crashed' | 'timeout';

export interface TestResult {
  run_id: number;
  nodeid: NodeId;
  status: TestStatus;
  duration_ms: number;
  message: string;
  uri: string | null;
  /** 0-based; the failing line, else the def line; null when it was edited away. */
  line: LineNo | null;
  output?: string;
}

export interface RunFinished {
  run_id: number;
  passed: number;
  failed: number;
  skipped: number;
  errors: number;
  total: number;
  duration_ms: number;
  cancelled?: boolean;
  counts?: Record<string, number>;
}

/**
 * Line coverage of one file. `run_id` and `tests` (lines each test covered in
 * this file, by node id) are optional: the client uses them when present.
 */
export interface CoverageMsg {
  uri: string;
  covered: LineNo[];
  missed: LineNo[];
  run_id?: number;
  tests?: Record<NodeId, LineNo[]>;
}

export type EngineState = 'starting' | 'ready' | 'rebuilding' | 'failed' | 'stopped';

export interface StatusMsg {
  folder: string;
  /** An `EngineState`, kept open to states a newer server may add. */
  state: string;
  layer?: string;
  detail?: string;
}

/** One row of the response of a run command. */
export interface ResultRow {
  nodeid: NodeId;
  status: TestStatus;
  duration_ms: number;
  message: string;
  uri: string | null;
  line: LineNo | null;
}

/** The response of `tach.runTests`, `tach.runAll` and `tach.runAffected`. */
export interface RunSummary {
  run_id?: number;
  results?: ResultRow[];
  passed?: number;
  failed?: number;
  total?: number;
  cancelled?: boolean;
  engine_errors?: string[];
  folders?: RunSummary[];
}

/** The arguments of `tach.runTests`. `coverage` asks for line coverage for this run only. */
export interface RunTestsArgs {
  tests?: NodeId[];
  uri?: string;
  folder?: string;
  coverage?: boolean;
}

export interface DebugEndpoint {
  host: string;
  port: number;
}

/** The answer of `tach.debugTest`: where the worker waits for a debugger, and the server run it is part of. */
export interface DebugTestAnswer extends DebugEndpoint {
  nodeid: NodeId;
  run_id: number;
}

/** The settings section sent as `initializationOptions` and in `didChangeConfiguration`. */
export interface ServerSettings {
  python: string | null;
  runOnSave: 'off' | 'file' | 'affected';
  coverage: boolean;
  isolation: 'off' | 'auto' | 'strict';
  isolationScope: 'batch' | 'test';
  workers: number | null;
  timeout: number;
}

export const SETTINGS_SECTION = 'tach-ls';
