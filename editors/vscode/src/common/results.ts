/**
 * One `tach/testResult` -> what a `TestRun` is told: passed, failed, skipped or
 * errored, a `TestMessage` at the failing line (with expected/actual when the
 * message is pytest's `assert a == b`), the duration, and the test's output.
 */

import * as vscode from 'vscode';

import type { LineNo } from './protocol';

/** The fields of a result this module reads: a `tach/testResult` or a row of a run's response. */
export interface ResultLike {
  nodeid: string;
  /** A `TestStatus` (kept open to statuses a newer server may add). */
  status: string;
  duration_ms: number;
  message: string;
  uri: string | null;
  line: LineNo | null;
  output?: string;
}

export type Outcome =
  | { kind: 'passed'; duration: number; note?: string }
  | { kind: 'skipped'; note?: string }
  | { kind: 'failed' | 'errored'; messages: vscode.TestMessage[]; duration: number };

const FAILED: ReadonlySet<string> = new Set(['failed']);
const ERRORED: ReadonlySet<string> = new Set(['error', 'crashed', 'timeout']);

/**
 * `expected`/`actual` from pytest's rewritten assertion message
 * (`assert 4 == 5`: actual 4, expected 5). Undefined when the first line is
 * not a single `==` comparison.
 */
export function parseComparison(message: string): { expected: string; actual: string } | undefined {
  let first = (message.split('\n')[0] ?? '').trim();
  first = first.replace(/^E\s+/, '').replace(/^AssertionError:\s*/, '');
  if (!first.startsWith('assert ')) {
    return undefined;
  }
  const body = first.slice('assert '.length);
  const parts = body.split(' == ');
  if (parts.length !== 2) {
    return undefined;
  }
  const [actual, expected] = parts as [string, string];
  if (!actual.trim() || !expected.trim()) {
    return undefined;
  }
  return { expected: expected.trim(), actual: actual.trim() };
}

/** Where a failure is shown: the failing line of its file, when the server knows it. */
export function failureLocation(uri: string | null, line: LineNo | null): vscode.Location | undefined {
  if (!uri || line === null || line === undefined || line < 0) {
    return undefined;
  }
  return new vscode.Location(vscode.Uri.parse(uri), new vscode.Position(line, 0));
}

function failureMessage(result: ResultLike): vscode.TestMessage {
  const text = result.message || describeStatus(result.status);
  const comparison = result.status === 'failed' ? parseComparison(text) : undefined;
  const message = comparison ? vscode.TestMessage.diff(text, comparison.expected, comparison.actual) : new vscode.TestMessage(text);
  message.location = failureLocation(result.uri, result.line);
  return message;
}

function describeStatus(status: string): string {
  switch (status) {
    case 'crashed':
      return 'the worker running this test died';
    case 'timeout':
      return 'the test ran past its time limit (tach-ls.timeout)';
    case 'error':
      return 'error in setup or teardown';
    default:
      return status;
  }
}

export function outcomeOf(result: ResultLike): Outcome {
  const duration = result.duration_ms;
  if (result.status === 'passed') {
    return { kind: 'passed', duration };
  }
  if (result.status === 'xpassed') {
    return { kind: 'passed', duration, note: 'XPASS: expected to fail, but passed' };
  }
  if (result.status === 'skipped' || result.status === 'xfailed') {
    const reason = result.message ? `: ${result.message}` : '';
    return { kind: 'skipped', note: `${result.status === 'xfailed' ? 'XFAIL' : 'SKIPPED'}${reason}` };
  }
  if (FAILED.has(result.status)) {
    return { kind: 'failed', messages: [failureMessage(result)], duration };
  }
  if (ERRORED.has(result.status)) {
    const message = failureMessage(result);
    if (result.message) {
      message.message = `${result.status}: ${result.message}`;
    }
    return { kind: 'errored', messages: [message], duration };
  }
  return { kind: 'errored', messages: [new vscode.TestMessage(`unknown status from tach-ls: ${result.status}`)], duration };
}

/** Terminal text for `TestRun.appendOutput`: CRLF line ends. */
export function terminalText(text: string): string {
  const body = text.replace(/\r?\n/g, '\r\n');
  return body.endsWith('\r\n') ? body : `${body}\r\n`;
}

/** Tell a run what happened to one test. */
export function report(run: vscode.TestRun, item: vscode.TestItem, result: ResultLike): Outcome {
  const outcome = outcomeOf(result);
  switch (outcome.kind) {
    case 'passed':
      run.passed(item, outcome.duration);
      break;
    case 'skipped':
      run.skipped(item);
      break;
    case 'failed':
      run.failed(item, outcome.messages, outcome.duration);
      break;
    case 'errored':
      run.errored(item, outcome.messages, outcome.duration);
      break;
  }
  const note = outcome.kind === 'passed' || outcome.kind === 'skipped' ? outcome.note : undefined;
  const lines = [note, result.output].filter((s): s is string => Boolean(s));
  if (lines.length > 0) {
    run.appendOutput(terminalText(lines.join('\n')), failureLocation(result.uri, result.line), item);
  }
  return outcome;
}
