/** Routing run notifications to TestRuns: requested runs, runs nobody asked for, coverage, cancellation. */

import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import type * as vscode from 'vscode';

import { Runs } from '../src/common/runs';
import { TestTree } from '../src/common/testTree';
import { TreeModel } from '../src/common/tree';
import { CALC, id, recorded, ROOT } from './helpers';
import * as stub from './stub/vscode';

interface Setup {
  runs: Runs;
  controller: stub.FakeTestController;
  logs: string[];
  continuous: { request?: stub.TestRunRequest };
  coverageEverywhere: { on: boolean };
}

function setup(): Setup {
  const controller = stub.tests.createTestController('t', 't');
  const tree = new TestTree(controller as unknown as vscode.TestController, new TreeModel());
  tree.model.update(recorded().testsChanged);
  tree.sync();
  const logs: string[] = [];
  const continuous: { request?: stub.TestRunRequest } = {};
  const coverageEverywhere = { on: false };
  const runs = new Runs(controller as unknown as vscode.TestController, tree, {
    requestFor: (items) => (continuous.request ?? new stub.TestRunRequest(items as unknown as stub.FakeTestItem[])) as unknown as vscode.TestRunRequest,
    coverageOnEveryRun: () => coverageEverywhere.on,
    log: (l) => logs.push(l),
  });
  return { runs, controller, logs, continuous, coverageEverywhere };
}

describe('Runs', () => {
  beforeEach(() => stub.resetStub());

  test('a requested run: runStarted gives the id, results land in its TestRun, cases included', () => {
    const { runs } = setup();
    const rec = recorded();
    const run = new stub.FakeTestRun(new stub.TestRunRequest(), 'mine');
    const ctx = runs.begin(run as unknown as vscode.TestRun, false);
    let started = -1;
    runs.expect(ctx, ROOT, 'command', rec.runStarted.tests, (runId) => (started = runId));
    runs.onRunStarted(rec.runStarted);
    assert.equal(started, rec.runStarted.run_id);
    for (const r of rec.testResults) {
      runs.onTestResult(r);
    }
    runs.onRunFinished(rec.runFinished);
    runs.complete(ctx, ROOT, rec.response);
    runs.end(ctx);
    const outcomes = run.outcomes();
    assert.deepEqual(
      [...outcomes].map(([k, e]) => [k, e.op]),
      [
        [id('tests/test_calc.py::test_add_wrong'), 'failed'],
        [id('tests/test_calc.py::test_div[1-1-1]'), 'passed'],
        [id('tests/test_calc.py::test_div[6-3-2]'), 'passed'],
      ],
    );
    const started_ = run.events.filter((e) => e.op === 'started').map((e) => e.id);
    assert.deepEqual(started_.sort(), [id('tests/test_calc.py::test_add_wrong'), id('tests/test_calc.py::test_div[1-1-1]'), id('tests/test_calc.py::test_div[6-3-2]')]);
    assert.equal(run.events.filter((e) => e.op === 'failed').length, 1, 'the response does not report a test twice');
    assert.equal(run.ended, true);
  });

  test('the response fills in results no notification brought', () => {
    const { runs } = setup();
    const rec = recorded();
    const run = new stub.FakeTestRun(new stub.TestRunRequest(), 'mine');
    const ctx = runs.begin(run as unknown as vscode.TestRun, false);
    runs.expect(ctx, ROOT, 'command', rec.runStarted.tests);
    runs.onRunStarted(rec.runStarted);
    runs.complete(ctx, ROOT, rec.response);
    assert.equal(run.outcomes().size, 3);
  });

  test('a run nobody asked for (save, code lens) gets its own TestRun, ended by runFinished', () => {
    const { runs, controller } = setup();
    runs.onRunStarted({ run_id: 7, folder: ROOT, tests: ['tests/test_calc.py'], reason: 'save' });
    runs.onTestResult({ run_id: 7, nodeid: 'tests/test_calc.py::test_add', status: 'failed', duration_ms: 1, message: 'assert 3 == 4', uri: CALC, line: 6 });
    runs.onRunFinished({ run_id: 7, passed: 0, failed: 1, skipped: 0, errors: 0, total: 1, duration_ms: 3 });
    const [run] = controller.runs;
    assert.ok(run);
    assert.equal(run.name, 'tach-ls (save)');
    assert.deepEqual(run.request.include?.map((i) => i.id), [id('tests/test_calc.py')]);
    assert.equal(run.events.filter((e) => e.op === 'started').length, 5, 'every test of the saved file');
    const failed = run.outcomes().get(id('tests/test_calc.py::test_add'));
    assert.equal((failed?.messages?.[0]?.location?.range as stub.Position).line, 6);
    assert.equal(run.ended, true);
  });

  test('during a continuous run, save runs report under its request', () => {
    const { runs, controller, continuous } = setup();
    continuous.request = new stub.TestRunRequest(undefined, undefined, undefined, true);
    runs.onRunStarted({ run_id: 8, folder: ROOT, tests: ['tests/test_calc.py'], reason: 'save' });
    assert.equal(controller.runs[0]?.request, continuous.request);
  });

  test('coverage goes to the run that shows coverage (by run_id when sent)', () => {
    const { runs } = setup();
    const plain = new stub.FakeTestRun(new stub.TestRunRequest(), 'plain');
    const withCoverage = new stub.FakeTestRun(new stub.TestRunRequest(), 'coverage');
    runs.begin(plain as unknown as vscode.TestRun, false);
    const ctx = runs.begin(withCoverage as unknown as vscode.TestRun, true);
    runs.onCoverage({ uri: 'file:///work/lsp%20basic/src/calc/__init__.py', covered: [0, 1], missed: [4] });
    assert.equal(withCoverage.events.filter((e) => e.op === 'coverage').length, 1);
    assert.equal(plain.events.filter((e) => e.op === 'coverage').length, 0);
    runs.expect(ctx, ROOT, 'command', ['x']);
    runs.onRunStarted({ run_id: 3, folder: ROOT, tests: ['x'], reason: 'command' });
    runs.onCoverage({ uri: 'file:///work/lsp%20basic/src/calc/__init__.py', covered: [4], missed: [], run_id: 3 });
    const last = withCoverage.events.filter((e) => e.op === 'coverage').pop()?.coverage;
    assert.deepEqual([last?.statementCoverage.covered, last?.statementCoverage.total], [3, 3]);
  });

  test('a save run shows coverage when tach-ls.coverage is on', () => {
    const { runs, controller, coverageEverywhere } = setup();
    coverageEverywhere.on = true;
    runs.onRunStarted({ run_id: 9, folder: ROOT, tests: ['tests/test_calc.py'], reason: 'save' });
    runs.onCoverage({ uri: CALC, covered: [5, 6], missed: [] });
    assert.equal(controller.runs[0]?.events.filter((e) => e.op === 'coverage').length, 1);
  });

  test('two runs with the same reason are matched in order, by their targets first', () => {
    const { runs } = setup();
    const a = new stub.FakeTestRun(new stub.TestRunRequest(), 'a');
    const b = new stub.FakeTestRun(new stub.TestRunRequest(), 'b');
    const ca = runs.begin(a as unknown as vscode.TestRun, false);
    const cb = runs.begin(b as unknown as vscode.TestRun, false);
    runs.expect(ca, ROOT, 'command', ['tests/test_calc.py::test_add']);
    runs.expect(cb, ROOT, 'command', ['tests/test_calc.py::TestDiv']);
    runs.onRunStarted({ run_id: 2, folder: ROOT, tests: ['tests/test_calc.py::TestDiv'], reason: 'command' });
    runs.onRunStarted({ run_id: 1, folder: ROOT, tests: ['tests/test_calc.py::test_add'], reason: 'command' });
    assert.deepEqual(runs.runIdsOf(ca), [1]);
    assert.deepEqual(runs.runIdsOf(cb), [2]);
  });

  test('results for unknown runs or tests are logged, not thrown', () => {
    const { runs, logs } = setup();
    runs.onTestResult({ run_id: 99, nodeid: 'x', status: 'passed', duration_ms: 1, message: '', uri: null, line: null });
    runs.onRunStarted({ run_id: 5, folder: ROOT, tests: [], reason: 'all' });
    runs.onTestResult({ run_id: 5, nodeid: 'tests/test_new.py::test_dyn', status: 'passed', duration_ms: 1, message: '', uri: null, line: null });
    assert.equal(logs.length, 2);
  });

  test('endAll ends every open run (the server went away)', () => {
    const { runs, controller } = setup();
    const run = new stub.FakeTestRun(new stub.TestRunRequest(), 'mine');
    runs.begin(run as unknown as vscode.TestRun, false);
    runs.onRunStarted({ run_id: 4, folder: ROOT, tests: [], reason: 'save' });
    runs.endAll('the server stopped');
    assert.equal(run.ended, true);
    assert.equal(controller.runs[0]?.ended, true);
    assert.match(String(run.events[0]?.output), /server stopped/);
  });
});
