/** Coverage conversion: `tach/coverage` -> FileCoverage counts, StatementCoverage details, per-test details. */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type * as vscode from 'vscode';

import { coverageDataOf, documentSpan, fileCoverage, fileDetails, mergeCoverage, RunCoverage, testDetails } from '../src/common/coverage';
import type { CoverageMsg } from '../src/common/protocol';
import * as stub from './stub/vscode';

const SRC = 'file:///work/proj/src/calc/__init__.py';

function msg(covered: number[], missed: number[], tests?: Record<string, number[]>): CoverageMsg {
  return { uri: SRC, covered, missed, ...(tests ? { tests } : {}) };
}

describe('mergeCoverage', () => {
  test('a line covered by any message is covered; missed lines are those nobody covered', () => {
    const first = mergeCoverage(undefined, msg([0, 1], [4, 5]));
    const both = mergeCoverage(first, msg([4], [1, 5, 6]));
    assert.deepEqual([...both.covered].sort(), [0, 1, 4]);
    assert.deepEqual([...both.missed].sort(), [5, 6]);
    assert.deepEqual([...first.covered].sort(), [0, 1], 'the previous data is not mutated');
  });

  test('per-test lines are unions per node id', () => {
    const data = mergeCoverage(mergeCoverage(undefined, msg([0], [], { 't::a': [0] })), msg([3], [], { 't::a': [3], 't::b': [3] }));
    assert.deepEqual([...(data.tests.get('t::a') ?? [])], [0, 3]);
    assert.deepEqual([...(data.tests.get('t::b') ?? [])], [3]);
  });
});

describe('FileCoverage and details', () => {
  test('counts: covered over executable lines', () => {
    const cov = fileCoverage(mergeCoverage(undefined, msg([0, 2, 3], [5]))) as unknown as stub.FileCoverage;
    assert.equal(cov.uri.toString(), SRC);
    assert.deepEqual([cov.statementCoverage.covered, cov.statementCoverage.total], [3, 4]);
    assert.equal(cov.includesTests, undefined);
  });

  test('details: one statement per line in order, executed or not, at the line', () => {
    const details = fileDetails(mergeCoverage(undefined, msg([3, 0], [1]))) as unknown as stub.StatementCoverage[];
    assert.deepEqual(
      details.map((d) => [(d.location as stub.Position).line, d.executed]),
      [
        [0, true],
        [1, false],
        [3, true],
      ],
    );
  });

  test('with the document at hand, a statement spans its text', () => {
    const doc = { lineCount: 2, lineAt: (l: number) => ({ firstNonWhitespaceCharacterIndex: l * 4, range: { end: { character: 10 } } }) };
    const details = fileDetails(mergeCoverage(undefined, msg([1], [])), documentSpan(doc as unknown as vscode.TextDocument)) as unknown as stub.StatementCoverage[];
    const range = details[0]?.location as stub.Range;
    assert.deepEqual([range.start.line, range.start.character, range.end.character], [1, 4, 10]);
  });

  test("per test: the file's statements, executed only where that test went", () => {
    const data = mergeCoverage(undefined, msg([0, 1, 2], [3], { 't::a': [0, 1], 't::b': [0, 2] }));
    const a = testDetails(data, 't::a') as unknown as stub.StatementCoverage[];
    assert.deepEqual(
      a.map((d) => d.executed),
      [true, true, false, false],
    );
    assert.deepEqual(
      (testDetails(data, 't::unknown') as unknown as stub.StatementCoverage[]).map((d) => d.executed),
      [false, false, false, false],
    );
  });
});

describe('RunCoverage', () => {
  test('adds a FileCoverage per message, merged per file, with the tests that have per-test data', () => {
    const run = new stub.FakeTestRun(new stub.TestRunRequest(), 'r');
    const items = new Map([['t::a', new stub.FakeTestItem('root|t::a', 'a')]]);
    const coverage = new RunCoverage(run as unknown as vscode.TestRun, (nodeid) => items.get(nodeid) as unknown as vscode.TestItem | undefined);
    coverage.add(msg([0], [1, 2], { 't::a': [0], 't::gone': [0] }));
    const last = coverage.add(msg([1], [2])) as unknown as stub.FileCoverage;
    const added = run.events.filter((e) => e.op === 'coverage');
    assert.equal(added.length, 2, 'VS Code replaces the earlier FileCoverage of the same URI');
    assert.deepEqual([last.statementCoverage.covered, last.statementCoverage.total], [2, 3]);
    assert.deepEqual(last.includesTests?.map((t) => t.id), ['root|t::a'], 'unknown tests are left out');
    assert.deepEqual([...(coverageDataOf(last as unknown as vscode.FileCoverage)?.covered ?? [])].sort(), [0, 1]);
    assert.equal(coverage.size, 1);
  });
});
