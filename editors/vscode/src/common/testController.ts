/**
 * The Test Explorer: one `TestController` whose items come from
 * `tach/testsChanged` (so gutter icons appear before Python starts), and
 * three run profiles: Run (also continuous: run-on-save while it lasts),
 * Debug (attach to the worker `tach.debugTest` names) and Coverage (native
 * coverage from `tach/coverage`). Results stream in through `runs.ts`.
 */

import * as vscode from 'vscode';

import { coverageDataOf, documentSpan, fileDetails, testDetails, type LineSpan } from './coverage';
import { attach, parseEndpoint } from './debug';
import { planRun, type RunPlan } from './plan';
import * as protocol from './protocol';
import { Runs, type RunContext } from './runs';
import { TestTree } from './testTree';
import { TreeModel, type FilePlace } from './tree';

/** What the Test Explorer needs of the server connection. */
export interface CommandRunner {
  executeCommand<T>(command: string, args: unknown[]): Promise<T>;
  setContinuous(on: boolean): Promise<void>;
}

export interface TestsOptions {
  coverageOnEveryRun: () => boolean;
  log: (line: string) => void;
}

export const CONTROLLER_ID = 'tach-ls';

function placeByWorkspaceFolder(uri: string): FilePlace | undefined {
  const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.parse(uri));
  if (!folder) {
    return undefined;
  }
  return { root: folder.uri.toString(), path: vscode.workspace.asRelativePath(vscode.Uri.parse(uri), false) };
}

async function spanOf(uri: vscode.Uri): Promise<LineSpan | undefined> {
  try {
    return documentSpan(await vscode.workspace.openTextDocument(uri));
  } catch {
    return undefined; // the file is gone: gutter marks by line still work
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class TachTests implements vscode.Disposable {
  readonly controller: vscode.TestController;
  readonly tree: TestTree;
  readonly runs: Runs;
  readonly runProfile: vscode.TestRunProfile;
  readonly debugProfile: vscode.TestRunProfile;
  readonly coverageProfile: vscode.TestRunProfile;
  private continuousRequest?: vscode.TestRunRequest;

  constructor(
    private readonly server: CommandRunner,
    private readonly options: TestsOptions,
  ) {
    this.controller = vscode.tests.createTestController(CONTROLLER_ID, 'tach-ls (pytest)');
    this.tree = new TestTree(this.controller, new TreeModel(placeByWorkspaceFolder));
    this.runs = new Runs(this.controller, this.tree, {
      requestFor: (items) => this.continuousRequest ?? new vscode.TestRunRequest(items.length ? items : undefined, undefined, this.runProfile),
      coverageOnEveryRun: options.coverageOnEveryRun,
      log: options.log,
    });
    const K = vscode.TestRunProfileKind;
    this.runProfile = this.controller.createRunProfile('Run', K.Run, (r, t) => this.runOrWatch(r, t, false), true, undefined, true);
    this.debugProfile = this.controller.createRunProfile('Debug', K.Debug, (r, t) => this.debug(r, t), true);
    this.coverageProfile = this.controller.createRunProfile('Coverage', K.Coverage, (r, t) => this.runOrWatch(r, t, true), true);
    for (const profile of [this.runProfile, this.coverageProfile]) {
      profile.loadDetailedCoverage = async (_run, coverage) => {
        const data = coverageDataOf(coverage);
        return data ? fileDetails(data, await spanOf(coverage.uri)) : [];
      };
      profile.loadDetailedCoverageForTest = async (_run, coverage, item) => {
        const data = coverageDataOf(coverage);
        const spec = this.tree.spec(item);
        return data && spec ? testDetails(data, spec.nodeid, await spanOf(coverage.uri)) : [];
      };
    }
  }

  // -- notifications ------------------------------------------------------------------------
  testsChanged(msg: protocol.TestsChanged): void {
    if (this.tree.model.update(msg)) {
      this.tree.sync();
    }
  }

  runStarted(msg: protocol.RunStarted): void {
    this.runs.onRunStarted(msg);
  }

  testResult(msg: protocol.TestResult): void {
    this.runs.onTestResult(msg);
  }

  runFinished(msg: protocol.RunFinished): void {
    this.runs.onRunFinished(msg);
  }

  coverage(msg: protocol.CoverageMsg): void {
    this.runs.onCoverage(msg);
  }

  /** A new server process: it sends every tree again; runs of the old one are over. */
  serverRestarted(): void {
    this.runs.endAll('the tach-ls server restarted');
    this.tree.model.clear();
    this.tree.sync();
  }

  serverStopped(): void {
    this.runs.endAll('the tach-ls server stopped');
  }

  // -- run profiles ---------------------------------------------------------------------------
  private ids(items: readonly vscode.TestItem[] | undefined): string[] | undefined {
    return items?.map((i) => i.id);
  }

  private async runOrWatch(request: vscode.TestRunRequest, token: vscode.CancellationToken, coverage: boolean): Promise<void> {
    if (request.continuous) {
      await this.watch(request, token);
      return;
    }
    const run = this.controller.createTestRun(request, 'tach-ls', true);
    const ctx = this.runs.begin(run, coverage || this.options.coverageOnEveryRun());
    const plans = planRun(this.tree.model, this.ids(request.include), this.ids(request.exclude));
    for (const plan of plans) {
      for (const leaf of plan.leaves) {
        const item = this.tree.item(leaf.id);
        if (item) {
          run.enqueued(item);
        }
      }
    }
    const cancel = token.onCancellationRequested(() => this.cancel(ctx));
    try {
      for (const plan of plans) {
        if (token.isCancellationRequested) {
          break;
        }
        await this.runPlan(ctx, plan, coverage);
      }
    } finally {
      cancel.dispose();
      this.runs.end(ctx);
    }
  }

  private async runPlan(ctx: RunContext, plan: RunPlan, coverage: boolean): Promise<void> {
    const reason = plan.all ? 'all' : 'command';
    const spec: protocol.RunTestsArgs = plan.all ? { folder: plan.root } : { tests: plan.targets, folder: plan.root };
    if (coverage) {
      spec.coverage = true;
    }
    this.runs.expect(ctx, plan.root, reason, plan.targets, (runId) => {
      if (ctx.cancelRequested) {
        void this.cancelRun(runId);
      }
    });
    try {
      const command = plan.all ? protocol.CMD_RUN_ALL : protocol.CMD_RUN_TESTS;
      const summary = await this.server.executeCommand<protocol.RunSummary>(command, [spec]);
      this.runs.complete(ctx, plan.root, summary);
    } catch (error) {
      this.runs.unexpect(ctx, plan.root, reason, plan.targets);
      const text = `tach-ls could not run ${plan.all ? 'the suite' : plan.targets.join(' ')}: ${message(error)}`;
      ctx.run.appendOutput(`${text}\r\n`);
      for (const leaf of plan.leaves) {
        const item = this.tree.item(leaf.id);
        if (item && !ctx.reported.has(item.id)) {
          ctx.run.errored(item, new vscode.TestMessage(text));
        }
      }
    }
  }

  private cancel(ctx: RunContext): void {
    ctx.cancelRequested = true;
    for (const runId of this.runs.runIdsOf(ctx)) {
      void this.cancelRun(runId);
    }
  }

  private async cancelRun(runId: number): Promise<void> {
    try {
      await this.server.executeCommand(protocol.CMD_CANCEL, [{ run_id: runId }]);
    } catch (error) {
      this.options.log(`cancel of run ${runId} failed: ${message(error)}`);
    }
  }

  /** A continuous run: the server runs on save; each save's run reports under this request until cancelled. */
  private async watch(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    this.continuousRequest = request;
    await this.server.setContinuous(true);
    await new Promise<void>((resolve) => {
      if (token.isCancellationRequested) {
        resolve();
        return;
      }
      const sub = token.onCancellationRequested(() => {
        sub.dispose();
        resolve();
      });
    });
    if (this.continuousRequest === request) {
      this.continuousRequest = undefined;
      await this.server.setContinuous(false);
    }
  }

  /**
   * Debug one test: `tach.debugTest` starts its run (streamed into this `TestRun` like any
   * other) and answers where the worker waits; attach there. The `TestRun` ends with the
   * server's run, not with the debug session: a detached debugger leaves the test running.
   */
  private async debug(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    const plans = planRun(this.tree.model, this.ids(request.include), this.ids(request.exclude));
    const plan = plans[0];
    const nodeid = plan?.targets[0] ?? plan?.leaves[0]?.nodeid;
    if (!plan || !nodeid) {
      void vscode.window.showInformationMessage('tach-ls: choose one test to debug.');
      return;
    }
    if (plans.length > 1 || plan.targets.length > 1) {
      this.options.log(`debugging ${nodeid} only: one test is debugged at a time`);
    }
    const run = this.controller.createTestRun(request, `Debug ${nodeid}`, true);
    const ctx = this.runs.begin(run, false);
    this.runs.expect(ctx, plan.root, 'debug', [nodeid], (runId) => {
      if (ctx.cancelRequested) {
        void this.cancelRun(runId);
      }
    });
    const cancel = token.onCancellationRequested(() => this.cancel(ctx));
    let answered = false;
    try {
      const answer = await this.server.executeCommand<unknown>(protocol.CMD_DEBUG_TEST, [{ test: nodeid, folder: plan.root }]);
      answered = true;
      const endpoint = parseEndpoint(answer);
      if (typeof endpoint === 'string') {
        throw new Error(endpoint);
      }
      if (!token.isCancellationRequested) {
        const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.parse(plan.root));
        if (!(await attach(endpoint, nodeid, folder, run))) {
          throw new Error(`the debugger could not attach to ${endpoint.host}:${endpoint.port}`);
        }
      }
    } catch (error) {
      if (answered) {
        this.cancel(ctx); // its worker would wait for a debugger forever
      } else {
        this.runs.unexpect(ctx, plan.root, 'debug', [nodeid]); // a no-op once the server's run started
      }
      const text = `tach-ls could not debug ${nodeid}: ${message(error)}`;
      run.appendOutput(`${text}\r\n`);
      void vscode.window.showErrorMessage(text);
    } finally {
      cancel.dispose();
      if (ctx.open > 0 && ctx.runIds.size > 0) {
        ctx.endOnFinish = true; // the server's run goes on (or reports its error): its tach/runFinished ends this
      } else {
        this.runs.end(ctx);
      }
    }
  }

  /** A Debug code lens ran `tach.debugTest` itself: attach to what it answered. */
  async debugFromLens(answer: unknown, args: unknown[]): Promise<void> {
    const endpoint = parseEndpoint(answer);
    const first = args[0] as { test?: unknown } | undefined;
    const nodeid = typeof first?.test === 'string' ? first.test : 'test';
    if (typeof endpoint === 'string') {
      void vscode.window.showErrorMessage(`tach-ls could not debug ${nodeid}: ${endpoint}`);
      return;
    }
    if (!(await attach(endpoint, nodeid, vscode.workspace.workspaceFolders?.[0]))) {
      void vscode.window.showErrorMessage(`tach-ls: the debugger could not attach to ${endpoint.host}:${endpoint.port}`);
      const runId = (answer as { run_id?: unknown }).run_id;
      if (typeof runId === 'number') {
        void this.cancelRun(runId); // its worker would wait for a debugger forever
      }
    }
  }

  dispose(): void {
    this.runs.endAll('tach-ls is shutting down');
    this.controller.dispose();
  }
}
