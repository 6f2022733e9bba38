/**
 * tach-ls for VS Code: wiring only. Each concern lives in `common/`:
 *
 * - `client.ts`          the language client (`tach-ls serve` over stdio), settings sync, start failures
 * - `serverCommand.ts`   which command starts the server, and why it did not start
 * - `python.ts`          the Python extension's active interpreter (its public API)
 * - `settings.ts`        `tach-ls.*` settings -> the server's settings section
 * - `protocol.ts`        the `tach/*` and `tach.*` vocabulary, mirroring `tach_ls/protocol.py`
 * - `tree.ts`            pure: `tach/testsChanged` -> the test tree (folders, files, classes, tests, cases)
 * - `testTree.ts`        that tree -> `TestItem`s
 * - `testController.ts`  the `TestController` and its Run / Debug / Coverage profiles
 * - `plan.ts`            pure: a run request -> server commands per workspace root
 * - `runs.ts`            run notifications -> `TestRun`s
 * - `results.ts`         one result -> passed / failed / skipped / errored, messages at the failing line
 * - `coverage.ts`        `tach/coverage` -> `FileCoverage` and `StatementCoverage`
 * - `debug.ts`           attaching a debugger to a test's worker (debugpy's type, else tach-ls-attach)
 * - `status.ts`          the status bar item for the server and the warm engine
 */

import * as vscode from 'vscode';

import { TachClient } from './common/client';
import { registerFallbackDebugger } from './common/debug';
import { PythonInterpreter } from './common/python';
import { currentSettings } from './common/settings';
import { StatusBar } from './common/status';
import { TachTests } from './common/testController';

const SHOW_LOG = 'tach-ls.showLog';
const RESTART = 'tach-ls.restart';

let client: TachClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('tach-ls', { log: true });
  const status = new StatusBar(SHOW_LOG);
  const python = new PythonInterpreter();
  let tests: TachTests | undefined = undefined;
  let everStarted = false;
  client = new TachClient(output, python, {
    testsChanged: (msg) => tests?.testsChanged(msg),
    runStarted: (msg) => tests?.runStarted(msg),
    testResult: (msg) => tests?.testResult(msg),
    runFinished: (msg) => tests?.runFinished(msg),
    coverage: (msg) => tests?.coverage(msg),
    status: (msg) => status.engine(msg),
    debugEndpoint: (answer, args) => void tests?.debugFromLens(answer, args),
    serverState: (state, detail) => {
      status.serverState(state, detail);
      if (state === 'starting' && everStarted) {
        tests?.serverRestarted();
      } else if (state === 'stopped' || state === 'failed') {
        tests?.serverStopped();
      }
      everStarted ||= state === 'starting';
    },
  });
  tests = new TachTests(client, { coverageOnEveryRun: () => currentSettings().coverage, log: (line) => output.info(line) });
  context.subscriptions.push(
    output,
    status,
    python,
    client,
    tests,
    registerFallbackDebugger(),
    vscode.commands.registerCommand(SHOW_LOG, () => output.show()),
    vscode.commands.registerCommand(RESTART, () => client?.restart()),
  );
  await client.start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
