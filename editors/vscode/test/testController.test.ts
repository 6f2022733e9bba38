/**
 * The Test Explorer against a fake server: what a click sends, how streamed
 * notifications become results, continuous runs, coverage runs, cancel and debug.
 */

import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import * as protocol from '../src/common/protocol';
import { TachTests, type CommandRunner } from '../src/common/testController';
import { CALC, id, recorded, ROOT } from './helpers';
import * as stub from './stub/vscode';

/** Answers commands like the server: runStarted, a result per test, runFinished, then the response. */
class FakeServer implements CommandRunner {
  readonly commands: { command: string; args: unknown[] }[] = [];
  readonly continuous: boolean[] = [];
  tests?: TachTests;
  nextRunId = 1;
  coverage?: protocol.CoverageMsg;
  fail?: string;
  debugAnswer: unknown = { host: '127.0.0.1', port: 5678 };
  /** tach.debugTest's error after its run started (debugpy missing: the test is reported as an error). */
  debugFail?: string;
  /** The debug run still going after tach.debugTest answered (it ends with `finishDebugRun`). */
  debugRun?: { runId: number; nodeid: string };
  /** Hold runs open until released (to test cancel). */
  hold = false;
  private release: (() => void)[] = [];

  async executeCommand<T>(command: string, args: unknown[]): Promise<T> {
    this.commands.push({ command, args });
    if (this.fail) {
      throw new Error(this.fail);
    }
    const tests = this.tests;
    assert.ok(tests);
    if (command === protocol.CMD_CANCEL) {
      this.release.forEach((r) => r());
      return { cancelled: [] } as T;
    }
    if (command === protocol.CMD_DEBUG_TEST) {
      const nodeid = (args[0] as { test: string }).test;
      const runId = this.nextRunId++;
      tests.runStarted({ run_id: runId, folder: ROOT, tests: [nodeid], reason: 'debug' });
      this.debugRun = { runId, nodeid };
      if (this.debugFail) {
        this.finishDebugRun('error', this.debugFail);
        throw new Error(this.debugFail);
      }
      return (typeof this.debugAnswer === 'object' ? { ...this.debugAnswer, nodeid, run_id: runId } : this.debugAnswer) as T;
    }
    const spec = (args[0] ?? {}) as protocol.RunTestsArgs;
    const targets = command === protocol.CMD_RUN_ALL ? [] : (spec.tests ?? []);
    const runId = this.nextRunId++;
    const reason = command === protocol.CMD_RUN_ALL ? 'all' : 'command';
    tests.runStarted({ run_id: runId, folder: ROOT, tests: targets, reason });
    if (this.hold) {
      await new Promise<void>((resolve) => this.release.push(resolve));
      tests.runFinished({ run_id: runId, passed: 0, failed: 0, skipped: 0, errors: 0, total: 0, duration_ms: 1, cancelled: true });
      return { results: [], cancelled: true } as T;
    }
    const rows = recorded().testResults.filter((r) => targets.length === 0 || targets.some((t) => r.nodeid === t || r.nodeid.startsWith(`${t}[`)));
    for (const row of rows) {
      tests.testResult({ ...row, run_id: runId });
    }
    if (this.coverage && spec.coverage) {
      tests.coverage(this.coverage);
    }
    tests.runFinished({ run_id: runId, passed: 0, failed: 0, skipped: 0, errors: 0, total: rows.length, duration_ms: 5 });
    return { results: rows } as T;
  }

  /** The debug run's result and end, as the server streams them once the test ran. */
  finishDebugRun(status: protocol.TestStatus, message = ''): void {
    const run = this.debugRun;
    assert.ok(run && this.tests);
    this.tests.testResult({ run_id: run.runId, nodeid: run.nodeid, status, duration_ms: 1, message, uri: CALC, line: 5 });
    this.tests.runFinished({ run_id: run.runId, passed: status === 'passed' ? 1 : 0, failed: 0, skipped: 0, errors: status === 'passed' ? 0 : 1, total: 1, duration_ms: 5 });
    this.debugRun = undefined;
  }

  setContinuous(on: boolean): Promise<void> {
    this.continuous.push(on);
    return Promise.resolve();
  }
}

function setup(): { server: FakeServer; tests: TachTests; controller: stub.FakeTestController } {
  const server = new FakeServer();
  const tests = new TachTests(server, { coverageOnEveryRun: () => false, log: () => undefined });
  server.tests = tests;
  tests.testsChanged(recorded().testsChanged);
  const controller = stub.controllers[stub.controllers.length - 1];
  assert.ok(controller);
  return { server, tests, controller };
}

function profile(controller: stub.FakeTestController, label: string): stub.FakeProfile {
  const p = controller.profiles.find((x) => x.label === label);
  assert.ok(p, label);
  return p;
}

function item(controller: stub.FakeTestController, nodeid: string): stub.FakeTestItem {
  const found = controller.all().get(id(nodeid));
  assert.ok(found, nodeid);
  return found;
}

describe('TachTests', () => {
  beforeEach(() => stub.resetStub());

  test('three profiles; Run supports continuous runs', () => {
    const { controller } = setup();
    assert.deepEqual(
      controller.profiles.map((p) => [p.label, p.kind, p.isDefault, p.supportsContinuousRun]),
      [
        ['Run', stub.TestRunProfileKind.Run, true, true],
        ['Debug', stub.TestRunProfileKind.Debug, true, false],
        ['Coverage', stub.TestRunProfileKind.Coverage, true, false],
      ],
    );
  });

  test('the gutter icon of test_add_wrong: one tach.runTests, failure at line 11 with a diff', async () => {
    const { server, controller } = setup();
    const wrong = item(controller, 'tests/test_calc.py::test_add_wrong');
    await profile(controller, 'Run').runHandler(new stub.TestRunRequest([wrong]), new stub.CancellationTokenSource().token);
    assert.deepEqual(server.commands, [{ command: protocol.CMD_RUN_TESTS, args: [{ tests: ['tests/test_calc.py::test_add_wrong'], folder: ROOT }] }]);
    const [run] = controller.runs;
    assert.ok(run?.ended);
    assert.deepEqual(run.events.map((e) => e.op), ['enqueued', 'started', 'failed', 'end']);
    const message = run.outcomes().get(wrong.id)?.messages?.[0];
    assert.equal(message?.location?.uri.toString(), CALC);
    assert.equal((message?.location?.range as stub.Position).line, 11);
    assert.deepEqual([message?.expectedOutput, message?.actualOutput], ['5', '4']);
  });

  test('run all: tach.runAll for the root, every test reported', async () => {
    const { server, controller } = setup();
    await profile(controller, 'Run').runHandler(new stub.TestRunRequest(), new stub.CancellationTokenSource().token);
    assert.equal(server.commands[0]?.command, protocol.CMD_RUN_ALL);
    assert.deepEqual(server.commands[0]?.args, [{ folder: ROOT }]);
    assert.equal(controller.runs[0]?.outcomes().size, 3, 'the recorded results');
  });

  test('the server cannot run: the tests error with its message, the run ends', async () => {
    const { server, controller } = setup();
    server.fail = 'the tach-ls server is not running';
    await profile(controller, 'Run').runHandler(new stub.TestRunRequest([item(controller, 'tests/test_calc.py::test_add')]), new stub.CancellationTokenSource().token);
    const [run] = controller.runs;
    const outcome = run?.outcomes().get(id('tests/test_calc.py::test_add'));
    assert.equal(outcome?.op, 'errored');
    assert.match(outcome?.messages?.[0]?.message as string, /not running/);
    assert.ok(run?.ended);
  });

  test('cancel sends tach.cancel with the run id', async () => {
    const { server, controller } = setup();
    server.hold = true;
    const source = new stub.CancellationTokenSource();
    const done = profile(controller, 'Run').runHandler(new stub.TestRunRequest([item(controller, 'tests/test_calc.py::test_add')]), source.token);
    await new Promise((r) => setImmediate(r));
    source.cancel();
    await done;
    assert.deepEqual(server.commands[1], { command: protocol.CMD_CANCEL, args: [{ run_id: 1 }] });
    assert.ok(controller.runs[0]?.ended);
  });

  test('a continuous run turns run-on-save on until it is stopped; saves report under it', async () => {
    const { server, tests, controller } = setup();
    const source = new stub.CancellationTokenSource();
    const request = new stub.TestRunRequest(undefined, undefined, profile(controller, 'Run'), true);
    const watching = profile(controller, 'Run').runHandler(request, source.token);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(server.continuous, [true]);
    tests.runStarted({ run_id: 11, folder: ROOT, tests: ['tests/test_calc.py'], reason: 'affected' });
    tests.testResult({ run_id: 11, nodeid: 'tests/test_calc.py::test_add', status: 'failed', duration_ms: 1, message: 'assert 3 == 4', uri: CALC, line: 6 });
    tests.runFinished({ run_id: 11, passed: 0, failed: 1, skipped: 0, errors: 0, total: 1, duration_ms: 2 });
    const [saveRun] = controller.runs;
    assert.equal(saveRun?.request, request);
    assert.equal(saveRun?.outcomes().get(id('tests/test_calc.py::test_add'))?.op, 'failed');
    source.cancel();
    await watching;
    assert.deepEqual(server.continuous, [true, false]);
  });

  test('the Coverage profile asks for coverage and adds it to its run; details load from it', async () => {
    const { server, controller } = setup();
    const src = `${ROOT}/src/calc/__init__.py`;
    server.coverage = { uri: src, covered: [0, 1, 2], missed: [5], tests: { 'tests/test_calc.py::test_add': [0, 1] } };
    stub.workspaceState.documents.set(src, 'def add(a, b):\n    return a + b\n');
    const coverageProfile = profile(controller, 'Coverage');
    await coverageProfile.runHandler(new stub.TestRunRequest([item(controller, 'tests/test_calc.py::test_add')]), new stub.CancellationTokenSource().token);
    assert.equal((server.commands[0]?.args[0] as protocol.RunTestsArgs).coverage, true);
    const [run] = controller.runs;
    const fileCoverage = run?.events.find((e) => e.op === 'coverage')?.coverage;
    assert.ok(fileCoverage);
    assert.deepEqual([fileCoverage.statementCoverage.covered, fileCoverage.statementCoverage.total], [3, 4]);
    assert.deepEqual(fileCoverage.includesTests?.map((t) => t.id), [id('tests/test_calc.py::test_add')]);
    const details = (await coverageProfile.loadDetailedCoverage?.(run, fileCoverage, undefined)) as stub.StatementCoverage[];
    const lineOf = (d: stub.StatementCoverage): number => (d.location instanceof stub.Position ? d.location.line : d.location.start.line);
    assert.deepEqual(details.map((d) => [lineOf(d), d.executed]), [
      [0, true],
      [1, true],
      [2, true],
      [5, false],
    ]);
    assert.equal((details[1]?.location as stub.Range).start.character, 4, 'spans the statement text');
    assert.ok(details[3]?.location instanceof stub.Position, 'a line past the end of the text: a position');
    const perTest = (await coverageProfile.loadDetailedCoverageForTest?.(run, fileCoverage, fileCoverage.includesTests?.[0], undefined)) as stub.StatementCoverage[];
    assert.deepEqual(perTest.map((d) => d.executed), [true, true, false, false]);
  });

  test('a plain run adds no coverage', async () => {
    const { server, controller } = setup();
    server.coverage = { uri: `${ROOT}/src/calc/__init__.py`, covered: [0], missed: [] };
    await profile(controller, 'Run').runHandler(new stub.TestRunRequest([item(controller, 'tests/test_calc.py::test_add')]), new stub.CancellationTokenSource().token);
    assert.equal((server.commands[0]?.args[0] as protocol.RunTestsArgs).coverage, undefined);
    assert.equal(controller.runs[0]?.events.filter((e) => e.op === 'coverage').length, 0);
  });

  test('Debug: tach.debugTest, then an attach session on the host and port it answers', async () => {
    const { server, controller } = setup();
    stub.extensions.installed.add('ms-python.debugpy');
    await profile(controller, 'Debug').runHandler(new stub.TestRunRequest([item(controller, 'tests/test_calc.py::test_add')]), new stub.CancellationTokenSource().token);
    assert.deepEqual(server.commands[0], { command: protocol.CMD_DEBUG_TEST, args: [{ test: 'tests/test_calc.py::test_add', folder: ROOT }] });
    assert.deepEqual(stub.debugState.started, [
      { type: 'debugpy', request: 'attach', name: 'tach-ls: tests/test_calc.py::test_add', connect: { host: '127.0.0.1', port: 5678 }, justMyCode: false },
    ]);
    server.finishDebugRun('passed');
    assert.ok(controller.runs[0]?.ended);
  });

  test('Debug without the Python Debugger extension attaches with tach-ls-attach', async () => {
    const { server, controller } = setup();
    await profile(controller, 'Debug').runHandler(new stub.TestRunRequest([item(controller, 'tests/test_calc.py::test_add')]), new stub.CancellationTokenSource().token);
    assert.deepEqual(stub.debugState.started, [
      { type: 'tach-ls-attach', request: 'attach', name: 'tach-ls: tests/test_calc.py::test_add', connect: { host: '127.0.0.1', port: 5678 }, justMyCode: false },
    ]);
    server.finishDebugRun('passed');
    assert.ok(controller.runs[0]?.ended);
  });

  test('Debug: the TestRun ends with the server run, not the debug session, and shows its result', async () => {
    const { server, controller } = setup();
    await profile(controller, 'Debug').runHandler(new stub.TestRunRequest([item(controller, 'tests/test_calc.py::test_add')]), new stub.CancellationTokenSource().token);
    const run = controller.runs[0];
    assert.ok(run && !run.ended, 'the session ended (a detached debugger) but the test still runs');
    server.finishDebugRun('passed');
    assert.ok(run.events.some((e) => e.op === 'passed' && e.id === id('tests/test_calc.py::test_add')));
    assert.ok(run.ended);
  });

  test('Debug when the debugger cannot attach: the waiting run is cancelled', async () => {
    const { server, controller } = setup();
    stub.debugState.answer = false;
    await profile(controller, 'Debug').runHandler(new stub.TestRunRequest([item(controller, 'tests/test_calc.py::test_add')]), new stub.CancellationTokenSource().token);
    assert.deepEqual(server.commands[1], { command: protocol.CMD_CANCEL, args: [{ run_id: 1 }] });
    assert.match(stub.shown[0]?.message ?? '', /could not attach to 127.0.0.1:5678/);
  });

  test('Debug when the server cannot debug: a clear error, no session, the run ends', async () => {
    const { server, controller } = setup();
    server.fail = 'not found: tests/test_calc.py::test_add';
    await profile(controller, 'Debug').runHandler(new stub.TestRunRequest([item(controller, 'tests/test_calc.py::test_add')]), new stub.CancellationTokenSource().token);
    assert.equal(stub.debugState.started.length, 0);
    assert.equal(stub.shown.length, 1);
    assert.match(stub.shown[0]?.message ?? '', /could not debug tests\/test_calc.py::test_add: not found/);
    assert.ok(controller.runs[0]?.ended);
  });

  test('Debug without debugpy in the project: the error, and the test errored in the Test Explorer', async () => {
    const { server, controller } = setup();
    server.debugFail = "debugpy is not installed in the project's interpreter /venv/bin/python: install it with `/venv/bin/python -m pip install debugpy`";
    await profile(controller, 'Debug').runHandler(new stub.TestRunRequest([item(controller, 'tests/test_calc.py::test_add')]), new stub.CancellationTokenSource().token);
    assert.equal(stub.debugState.started.length, 0);
    assert.match(stub.shown[0]?.message ?? '', /debugpy is not installed/);
    const run = controller.runs[0];
    assert.ok(run?.events.some((e) => e.op === 'errored' && e.id === id('tests/test_calc.py::test_add')));
    assert.ok(run?.ended);
  });

  test('a server restart clears the tree until the new server sends it', () => {
    const { tests, controller } = setup();
    assert.ok(controller.all().size > 0);
    tests.serverRestarted();
    assert.equal(controller.all().size, 0);
  });
});
