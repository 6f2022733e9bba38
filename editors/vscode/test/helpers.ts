/**
 * Shared helpers for the unit tests: the recorded lsp_basic messages
 * (fixtures/lsp_basic.json, from a real server run) and builders for
 * notifications. The `vscode` module is the stub in stub/vscode.ts.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type * as protocol from '../src/common/protocol';

export interface Recorded {
  testsChanged: protocol.TestsChanged;
  runStarted: protocol.RunStarted;
  testResults: protocol.TestResult[];
  runFinished: protocol.RunFinished;
  response: protocol.RunSummary;
  status: protocol.StatusMsg[];
}

/** A fresh copy of the recorded run (tests may mutate it). */
export function recorded(): Recorded {
  // Bundled tests run from out/test/: the fixture stays in test/fixtures/.
  const path = join(__dirname, '..', '..', 'test', 'fixtures', 'lsp_basic.json');
  return JSON.parse(readFileSync(path, 'utf8')) as Recorded;
}

export const ROOT = 'file:///work/lsp%20basic';
export const CALC = `${ROOT}/tests/test_calc.py`;

export function id(nodeid: string, root = ROOT): string {
  return `${root}|${nodeid}`;
}

/** A one-function test file's tree, as the server sends it. */
export function fileTree(root: string, path: string, functions: string[], firstLine = 0): protocol.TestsChanged {
  const uri = `${root}/${path}`;
  const tests: protocol.TestNode[] = [
    {
      id: path,
      label: path.split('/').pop() ?? path,
      kind: 'module',
      uri,
      range: { start: { line: 0, character: 0 }, end: { line: 99, character: 0 } },
      selection_line: 0,
      parent: null,
    },
  ];
  functions.forEach((name, i) => {
    const line = firstLine + i * 3;
    tests.push({
      id: `${path}::${name}`,
      label: name,
      kind: 'function',
      uri,
      range: { start: { line, character: 0 }, end: { line: line + 1, character: 10 } },
      selection_line: line,
      parent: path,
    });
  });
  return { uri, version: null, tests, errors: [] };
}
