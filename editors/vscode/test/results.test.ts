/** Result mapping: a `tach/testResult` -> the TestRun call, message, location, diff, duration, output. */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type * as vscode from 'vscode';

import { outcomeOf, parseComparison, report, terminalText, type ResultLike } from '../src/common/results';
import { CALC, recorded } from './helpers';
import * as stub from './stub/vscode';

function result(status: string, extra: Partial<ResultLike> = {}): ResultLike {
  return { nodeid: 'tests/test_calc.py::test_x', status, duration_ms: 2.5, message: '', uri: CALC, line: 7, ...extra };
}

describe('parseComparison', () => {
  test("pytest's `assert a == b`: left is actual, right is expected", () => {
    assert.deepEqual(parseComparison('assert 4 == 5'), { actual: '4', expected: '5' });
  });
  test('the first line only, with AssertionError / E prefixes', () => {
    assert.deepEqual(parseComparison("AssertionError: assert 'abc' == 'abd'\n  - abd\n  + abc"), { actual: "'abc'", expected: "'abd'" });
    assert.deepEqual(parseComparison('E       assert [1, 2] == [1, 3]'), { actual: '[1, 2]', expected: '[1, 3]' });
  });
  test('no diff when the comparison is not a single ==', () => {
    assert.equal(parseComparison('assert 1 != 1'), undefined);
    assert.equal(parseComparison("assert 'a == b' == 'c'"), undefined, 'ambiguous: two == on the line');
    assert.equal(parseComparison('ZeroDivisionError: division by zero'), undefined);
  });
});

describe('outcomeOf', () => {
  test('the recorded failure: failed, at 0-based line 11 of test_calc.py, with expected/actual', () => {
    const failure = recorded().testResults.find((r) => r.status === 'failed');
    assert.ok(failure);
    const outcome = outcomeOf(failure);
    assert.equal(outcome.kind, 'failed');
    assert.ok(outcome.kind === 'failed');
    const [message] = outcome.messages as unknown as stub.TestMessage[];
    assert.equal(message?.message, 'assert 4 == 5');
    assert.equal(message?.expectedOutput, '5');
    assert.equal(message?.actualOutput, '4');
    assert.equal(message?.location?.uri.toString(), failure.uri);
    assert.equal((message?.location?.range as stub.Position).line, 11);
    assert.equal(outcome.duration, failure.duration_ms);
  });

  test('passed and xpassed pass; skipped and xfailed skip', () => {
    assert.deepEqual(outcomeOf(result('passed')), { kind: 'passed', duration: 2.5 });
    assert.equal(outcomeOf(result('xpassed')).kind, 'passed');
    assert.equal(outcomeOf(result('skipped', { message: 'no db' })).kind, 'skipped');
    assert.equal(outcomeOf(result('xfailed')).kind, 'skipped');
  });

  test('error, crashed and timeout are errors with a message saying which', () => {
    for (const status of ['error', 'crashed', 'timeout']) {
      const outcome = outcomeOf(result(status, { message: 'worker got SIGSEGV' }));
      assert.equal(outcome.kind, 'errored', status);
      assert.ok(outcome.kind === 'errored');
      assert.equal((outcome.messages[0] as unknown as stub.TestMessage).message, `${status}: worker got SIGSEGV`);
    }
    const silent = outcomeOf(result('timeout'));
    assert.ok(silent.kind === 'errored');
    assert.match(silent.messages[0]?.message as string, /time limit/);
  });

  test('no location when the failing line was edited away (line null)', () => {
    const outcome = outcomeOf(result('failed', { message: 'boom', line: null }));
    assert.ok(outcome.kind === 'failed');
    assert.equal(outcome.messages[0]?.location, undefined);
  });

  test('an error is not offered as a diff even if it reads like one', () => {
    const outcome = outcomeOf(result('error', { message: 'assert 1 == 2' }));
    assert.ok(outcome.kind === 'errored');
    assert.equal((outcome.messages[0] as unknown as stub.TestMessage).expectedOutput, undefined);
  });
});

describe('report', () => {
  test('calls the TestRun and attaches output in CRLF at the failing location', () => {
    const run = new stub.FakeTestRun(new stub.TestRunRequest(), 'r');
    const item = new stub.FakeTestItem('x', 'test_x');
    report(run as unknown as vscode.TestRun, item as unknown as vscode.TestItem, result('failed', { message: 'assert 1 == 2', output: 'printed\nmore' }));
    assert.deepEqual(
      run.events.map((e) => e.op),
      ['failed', 'output'],
    );
    assert.equal(run.events[0]?.duration, 2.5);
    assert.equal(run.events[1]?.output, 'printed\r\nmore\r\n');
    assert.equal((run.events[1]?.location?.range as stub.Position).line, 7);
  });

  test('a skip keeps its reason in the output', () => {
    const run = new stub.FakeTestRun(new stub.TestRunRequest(), 'r');
    report(run as unknown as vscode.TestRun, new stub.FakeTestItem('x', 'x') as unknown as vscode.TestItem, result('skipped', { message: 'needs a db' }));
    assert.deepEqual(
      run.events.map((e) => [e.op, e.output]),
      [
        ['skipped', undefined],
        ['output', 'SKIPPED: needs a db\r\n'],
      ],
    );
  });

  test('terminalText', () => {
    assert.equal(terminalText('a\nb'), 'a\r\nb\r\n');
    assert.equal(terminalText('a\r\n'), 'a\r\n');
  });
});
