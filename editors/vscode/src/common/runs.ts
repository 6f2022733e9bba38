/**
 * Routes the server's run notifications to VS Code `TestRun`s.
 *
 * A run the Test Explorer asked for registers what it expects (reason and
 * targets) before sending its command; the matching `tach/runStarted` gives
 * its `run_id`, and every `tach/testResult`, `tach/coverage` and
 * `tach/runFinished` with that id lands in that `TestRun`. A run nobody here
 * asked for (a save with run-on-save, a code lens click) gets a `TestRun` of
 * its own, inside the continuous run when one is on.
 */

import type * as vscode from 'vscode';

import { RunCoverage } from './coverage';
import type { CoverageMsg, NodeId, RunFinished, RunStarted, RunSummary, TestResult } from './protocol';
import { report, type ResultLike } from './results';
import type { TestTree } from './testTree';
import { placeOf } from './tree';

/** One VS Code `TestRun` and the server runs (one per workspace root) reported into it. */
export class RunContext {
  readonly runIds = new Set<number>();
  readonly reported = new Set<string>();
  /** Server runs this context still waits for (expected and not finished). */
  open = 0;
  cancelRequested = false;
  coverage?: RunCoverage;
  ended = false;
  /** End on the last `tach/runFinished` (a debug run outlives the command that started it). */
  endOnFinish = false;

  constructor(
    readonly run: vscode.TestRun,
    /** Made by `Runs` for a run nobody here asked for: ends on `tach/runFinished`. */
    readonly unsolicited: boolean,
  ) {}
}

interface Expectation {
  ctx: RunContext;
  root: string;
  reason: string;
  tests: string[];
  onStarted?: (runId: number) => void;
}

export interface RunsOptions {
  /** The request unsolicited runs are reported under (the continuous run's, else a plain one). */
  requestFor: (items: vscode.TestItem[]) => vscode.TestRunRequest;
  /** Whether runs nobody asked for show coverage (the `tach-ls.coverage` setting). */
  coverageOnEveryRun: () => boolean;
  log: (line: string) => void;
}

function sameTargets(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

export class Runs {
  private readonly expected: Expectation[] = [];
  private readonly byRunId = new Map<number, { ctx: RunContext; root: string }>();
  private readonly contexts = new Set<RunContext>();

  constructor(
    private readonly controller: vscode.TestController,
    private readonly tree: TestTree,
    private readonly options: RunsOptions,
  ) {}

  /** A context for a `TestRun` the Test Explorer started; `coverage` shows the run's coverage. */
  begin(run: vscode.TestRun, coverage: boolean): RunContext {
    const ctx = new RunContext(run, false);
    if (coverage) {
      ctx.coverage = new RunCoverage(run, (nodeid) => this.itemForAnyRoot(ctx, nodeid));
    }
    this.contexts.add(ctx);
    return ctx;
  }

  /** Call before sending a run command: its `tach/runStarted` will be matched to `ctx`. */
  expect(ctx: RunContext, root: string, reason: string, tests: string[], onStarted?: (runId: number) => void): void {
    ctx.open += 1;
    this.expected.push({ ctx, root, reason, tests, onStarted });
  }

  /** The command of an expectation failed before any run started: stop waiting for it. */
  unexpect(ctx: RunContext, root: string, reason: string, tests: string[]): void {
    const index = this.expected.findIndex((e) => e.ctx === ctx && e.root === root && e.reason === reason && sameTargets(e.tests, tests));
    if (index >= 0) {
      this.expected.splice(index, 1);
      ctx.open -= 1;
    }
  }

  onRunStarted(msg: RunStarted): void {
    let index = this.expected.findIndex((e) => e.reason === msg.reason && sameTargets(e.tests, msg.tests));
    if (index < 0) {
      index = this.expected.findIndex((e) => e.reason === msg.reason);
    }
    const expectation = index >= 0 ? this.expected.splice(index, 1)[0] : undefined;
    let ctx: RunContext;
    let root: string;
    if (expectation) {
      ctx = expectation.ctx;
      root = expectation.root;
      expectation.onStarted?.(msg.run_id);
    } else {
      root = msg.folder;
      const items = this.targetItems(root, msg.tests);
      const run = this.controller.createTestRun(this.options.requestFor(items), `tach-ls (${msg.reason})`, true);
      ctx = new RunContext(run, true);
      ctx.open = 1;
      if (this.options.coverageOnEveryRun()) {
        ctx.coverage = new RunCoverage(run, (nodeid) => this.itemForAnyRoot(ctx, nodeid));
      }
      this.contexts.add(ctx);
    }
    ctx.runIds.add(msg.run_id);
    this.byRunId.set(msg.run_id, { ctx, root });
    for (const item of this.leafItems(root, msg.tests)) {
      ctx.run.started(item);
    }
  }

  onTestResult(msg: TestResult): void {
    const entry = this.byRunId.get(msg.run_id);
    if (!entry) {
      this.options.log(`result for unknown run ${msg.run_id}: ${msg.nodeid} ${msg.status}`);
      return;
    }
    this.reportOne(entry.ctx, entry.root, msg);
  }

  onCoverage(msg: CoverageMsg): void {
    const ctx = this.coverageTarget(msg);
    ctx?.coverage?.add(msg);
  }

  onRunFinished(msg: RunFinished): void {
    const entry = this.byRunId.get(msg.run_id);
    if (!entry) {
      return;
    }
    this.byRunId.delete(msg.run_id);
    entry.ctx.open -= 1;
    if (msg.cancelled) {
      entry.ctx.run.appendOutput('tach-ls: run cancelled\r\n');
    }
    if ((entry.ctx.unsolicited || entry.ctx.endOnFinish) && entry.ctx.open <= 0) {
      this.end(entry.ctx);
    }
  }

  /** A run command answered: report rows no notification reported (the response is the record). */
  complete(ctx: RunContext, root: string, summary: RunSummary | undefined): void {
    const summaries = summary?.folders ?? (summary ? [summary] : []);
    for (const s of summaries) {
      for (const row of s.results ?? []) {
        this.reportOne(ctx, root, row);
      }
      for (const error of s.engine_errors ?? []) {
        ctx.run.appendOutput(`tach-ls: ${error}\r\n`);
      }
    }
  }

  end(ctx: RunContext): void {
    if (ctx.ended) {
      return;
    }
    ctx.ended = true;
    for (const id of ctx.runIds) {
      this.byRunId.delete(id);
    }
    for (let i = this.expected.length - 1; i >= 0; i--) {
      if (this.expected[i]?.ctx === ctx) {
        this.expected.splice(i, 1);
      }
    }
    this.contexts.delete(ctx);
    ctx.run.end();
  }

  /** The server went away: every run ends now. */
  endAll(reason: string): void {
    for (const ctx of [...this.contexts]) {
      ctx.run.appendOutput(`tach-ls: ${reason}\r\n`);
      this.end(ctx);
    }
  }

  /** The server's run ids of a context (to cancel them). */
  runIdsOf(ctx: RunContext): number[] {
    return [...ctx.runIds];
  }

  private reportOne(ctx: RunContext, root: string, result: ResultLike): void {
    const item = this.itemFor(root, result);
    if (!item) {
      this.options.log(`result for a test not in the tree: ${result.nodeid} ${result.status}`);
      return;
    }
    if (ctx.reported.has(item.id)) {
      return;
    }
    ctx.reported.add(item.id);
    report(ctx.run, item, result);
  }

  private itemFor(root: string, result: Pick<ResultLike, 'nodeid' | 'uri'>): vscode.TestItem | undefined {
    const path = result.nodeid.split('::')[0] ?? '';
    const place = result.uri ? placeOf(result.uri, path) : undefined;
    const spec = this.tree.model.find(place?.root ?? root, result.nodeid);
    return spec ? this.tree.item(spec.id) : undefined;
  }

  private itemForAnyRoot(ctx: RunContext, nodeid: NodeId): vscode.TestItem | undefined {
    for (const { ctx: c, root } of this.byRunId.values()) {
      if (c === ctx) {
        const spec = this.tree.model.find(root, nodeid);
        if (spec) {
          return this.tree.item(spec.id);
        }
      }
    }
    for (const root of this.tree.model.allRoots()) {
      const spec = this.tree.model.find(root.root, nodeid);
      if (spec) {
        return this.tree.item(spec.id);
      }
    }
    return undefined;
  }

  /** The run a coverage message belongs to: its `run_id` when sent, else the newest open run that shows coverage. */
  private coverageTarget(msg: CoverageMsg): RunContext | undefined {
    if (msg.run_id !== undefined) {
      return this.byRunId.get(msg.run_id)?.ctx;
    }
    const candidates = [...this.contexts].filter((c) => c.coverage && !c.ended);
    return candidates[candidates.length - 1];
  }

  /** The items of a run's targets (node ids or paths; none: the whole root). */
  private targetItems(root: string, targets: string[]): vscode.TestItem[] {
    const ids = targets.length > 0 ? targets : [''];
    return ids
      .map((t) => this.tree.model.find(root, t.replace(/\/+$/, '')))
      .map((spec) => (spec ? this.tree.item(spec.id) : undefined))
      .filter((item): item is vscode.TestItem => item !== undefined);
  }

  private leafItems(root: string, targets: string[]): vscode.TestItem[] {
    const ids = targets.length > 0 ? targets : [''];
    const out: vscode.TestItem[] = [];
    for (const target of ids) {
      const spec = this.tree.model.find(root, target.replace(/\/+$/, ''));
      for (const leaf of spec ? this.tree.model.leaves(spec) : []) {
        const item = this.tree.item(leaf.id);
        if (item) {
          out.push(item);
        }
      }
    }
    return out;
  }
}
