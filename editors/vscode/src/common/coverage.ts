/**
 * `tach/coverage` -> VS Code's native coverage: a `FileCoverage` per file
 * (covered / total statements) for `TestRun.addCoverage`, `StatementCoverage`
 * details when the editor asks (`loadDetailedCoverage`), and, when the server
 * sends per-test lines (`tests: {nodeid: [lines]}`), the coverage of one test
 * (`loadDetailedCoverageForTest`). Several messages for one file in one run
 * (one per worker batch, say) are merged.
 */

import * as vscode from 'vscode';

import type { CoverageMsg, LineNo, NodeId } from './protocol';

/** What is known of one file's coverage in one run. */
export interface FileCoverageData {
  uri: string;
  covered: Set<LineNo>;
  missed: Set<LineNo>;
  /** Lines each test executed in this file (empty when the server sends no per-test data). */
  tests: Map<NodeId, Set<LineNo>>;
}

/** Merge one message into what a run already has for the file: a line covered anywhere is covered. */
export function mergeCoverage(previous: FileCoverageData | undefined, msg: CoverageMsg): FileCoverageData {
  const covered = new Set<LineNo>(previous?.covered);
  for (const line of msg.covered) {
    covered.add(line);
  }
  const missed = new Set<LineNo>();
  for (const line of [...(previous?.missed ?? []), ...msg.missed]) {
    if (!covered.has(line)) {
      missed.add(line);
    }
  }
  const tests = new Map<NodeId, Set<LineNo>>();
  for (const [nodeid, lines] of previous?.tests ?? []) {
    tests.set(nodeid, new Set(lines));
  }
  for (const [nodeid, lines] of Object.entries(msg.tests ?? {})) {
    const set = tests.get(nodeid) ?? new Set<LineNo>();
    for (const line of lines) {
      set.add(line);
    }
    tests.set(nodeid, set);
  }
  return { uri: msg.uri, covered, missed, tests };
}

/** The span of a line's statement ([first non-blank character, end of line]), when the text is at hand. */
export type LineSpan = (line: LineNo) => [number, number] | undefined;

function location(line: LineNo, span: LineSpan | undefined): vscode.Position | vscode.Range {
  const chars = span?.(line);
  return chars ? new vscode.Range(line, chars[0], line, chars[1]) : new vscode.Position(line, 0);
}

/** One `StatementCoverage` per executable line, in line order; `executed` says whether `hit` has it. */
function statements(all: Iterable<LineNo>, hit: ReadonlySet<LineNo>, span?: LineSpan): vscode.StatementCoverage[] {
  return [...new Set(all)].sort((a, b) => a - b).map((line) => new vscode.StatementCoverage(hit.has(line), location(line, span)));
}

export function fileDetails(data: FileCoverageData, span?: LineSpan): vscode.StatementCoverage[] {
  return statements([...data.covered, ...data.missed], data.covered, span);
}

/** Every executable line of the file, executed only where this test went. */
export function testDetails(data: FileCoverageData, nodeid: NodeId, span?: LineSpan): vscode.StatementCoverage[] {
  return statements([...data.covered, ...data.missed], data.tests.get(nodeid) ?? new Set(), span);
}

export function fileCoverage(data: FileCoverageData, includesTests?: vscode.TestItem[]): vscode.FileCoverage {
  const total = new Set([...data.covered, ...data.missed]).size;
  return new vscode.FileCoverage(
    vscode.Uri.parse(data.uri),
    new vscode.TestCoverageCount(data.covered.size, total),
    undefined,
    undefined,
    includesTests && includesTests.length > 0 ? includesTests : undefined,
  );
}

/** The span finder for a document: statements start at their first non-blank character. */
export function documentSpan(doc: Pick<vscode.TextDocument, 'lineCount' | 'lineAt'>): LineSpan {
  return (line) => {
    if (line < 0 || line >= doc.lineCount) {
      return undefined;
    }
    const text = doc.lineAt(line);
    return [text.firstNonWhitespaceCharacterIndex, text.range.end.character];
  };
}

const coverageData = new WeakMap<vscode.FileCoverage, FileCoverageData>();

/** The data behind a `FileCoverage` this module made (for the editor's detail requests). */
export function coverageDataOf(coverage: vscode.FileCoverage): FileCoverageData | undefined {
  return coverageData.get(coverage);
}

/**
 * The coverage of one run: merges messages per file and re-adds the file's
 * `FileCoverage` (VS Code replaces the previous one for the same URI).
 */
export class RunCoverage {
  private readonly files = new Map<string, FileCoverageData>();

  constructor(
    private readonly run: vscode.TestRun,
    private readonly testItem: (nodeid: NodeId) => vscode.TestItem | undefined,
  ) {}

  add(msg: CoverageMsg): vscode.FileCoverage {
    const data = mergeCoverage(this.files.get(msg.uri), msg);
    this.files.set(msg.uri, data);
    const tests = [...data.tests.keys()].map(this.testItem).filter((t): t is vscode.TestItem => t !== undefined);
    const coverage = fileCoverage(data, tests);
    coverageData.set(coverage, data);
    this.run.addCoverage(coverage);
    return coverage;
  }

  get size(): number {
    return this.files.size;
  }
}
