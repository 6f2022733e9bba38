/**
 * The language client: starts `tach-ls serve` over stdio (see `serverCommand.ts`
 * for which command), passes the settings as `initializationOptions` and
 * sends every change, routes the `tach/*` notifications to their handlers,
 * runs `tach.*` commands, and tells the user clearly (with a fix) when the
 * server cannot start. The server's stderr log goes to the tach-ls output.
 */

import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  State,
  type LanguageClientOptions,
  type ServerOptions,
} from 'vscode-languageclient/node';

import * as protocol from './protocol';
import { PythonInterpreter } from './python';
import { describeCommand, diagnose, probeImport, resolveServerCommand, type ServerCommand, type StartFailure } from './serverCommand';
import { currentSettings, serverSettings, settingsPayload } from './settings';

export type ServerState = 'starting' | 'running' | 'stopped' | 'failed';

/** What the rest of the extension hears from the server. */
export interface ServerEvents {
  testsChanged(msg: protocol.TestsChanged): void;
  runStarted(msg: protocol.RunStarted): void;
  testResult(msg: protocol.TestResult): void;
  runFinished(msg: protocol.RunFinished): void;
  coverage(msg: protocol.CoverageMsg): void;
  status(msg: protocol.StatusMsg): void;
  serverState(state: ServerState, detail?: string): void;
  /** A `tach.debugTest` run from a code lens answered with where to attach. */
  debugEndpoint(endpoint: unknown, args: unknown[]): void;
}

const CLIENT_ID = 'tach-ls';

/**
 * A LanguageClient whose own error notifications are held back while it
 * starts: if the server cannot start, the user gets one notification from us,
 * with the cause and a fix, instead of three generic ones.
 */
class QuietStartClient extends LanguageClient {
  starting = true;

  override error(message: string, data?: unknown, showNotification: boolean | 'force' = true): void {
    super.error(message, data, this.starting ? false : showNotification);
  }
}
const RESTARTS_ALLOWED = 3;
const RESTART_WINDOW_MS = 3 * 60 * 1000;

export class TachClient implements vscode.Disposable {
  private client?: LanguageClient;
  private command?: ServerCommand;
  private continuous = false;
  private starting?: Promise<boolean>;
  private crashes: number[] = [];
  /** Why the server was given up on: shown instead of a plain "stopped". */
  private gaveUp?: string;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly output: vscode.LogOutputChannel,
    private readonly python: PythonInterpreter,
    private readonly events: ServerEvents,
  ) {
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(`${protocol.SETTINGS_SECTION}.serverCommand`)) {
          void this.restart();
        } else if (e.affectsConfiguration(protocol.SETTINGS_SECTION)) {
          void this.sendSettings();
        }
      }),
      python.onDidChange(() => {
        // A new interpreter: a server started with the old one must go; otherwise only `python` changes.
        if (this.command?.source !== 'setting') {
          void this.restart();
        } else {
          void this.sendSettings();
        }
      }),
    );
  }

  get running(): boolean {
    return this.client?.state === State.Running;
  }

  start(): Promise<boolean> {
    this.starting ??= this.doStart().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async doStart(): Promise<boolean> {
    const settings = currentSettings();
    const interpreter = settings.serverCommand.length === 0 || !settings.python ? await this.python.executable() : undefined;
    const cmd = resolveServerCommand(settings.serverCommand, interpreter);
    this.command = cmd;
    this.output.info(`starting the server: ${describeCommand(cmd)} (${cmd.source})`);
    const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    // No `transport`: with TransportKind.stdio the client would append `--stdio`, which `tach-ls serve` refuses.
    const serverOptions: ServerOptions = { command: cmd.command, args: cmd.args, options: { cwd, env: process.env } };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file', language: 'python' }],
      outputChannel: this.output,
      traceOutputChannel: this.output,
      initializationOptions: settingsPayload(serverSettings(settings, interpreter, this.continuous)),
      initializationFailedHandler: (error) => {
        startError = errorText(error);
        return false;
      },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue, handled: true }),
        closed: () => this.onClosed(),
      },
      middleware: {
        executeCommand: async (command, args, next) => {
          try {
            const result: unknown = await next(command, args);
            if (command === protocol.CMD_DEBUG_TEST) {
              this.events.debugEndpoint(result, args);
            }
            return result;
          } catch (error) {
            void vscode.window.showErrorMessage(`tach-ls: ${command} failed: ${errorText(error)}`);
            return undefined;
          }
        },
      },
    };
    let startError: string | undefined;
    const client = new QuietStartClient(CLIENT_ID, 'tach-ls', serverOptions, clientOptions);
    this.client = client;
    this.listen(client);
    try {
      await client.start();
    } catch (error) {
      startError ??= errorText(error);
    }
    // start() can resolve although the server died during initialize: the state tells.
    if (client.state !== State.Running) {
      this.client = undefined;
      await client.dispose().catch(() => undefined);
      const probe = cmd.python ? await probeImport(cmd.python, cwd) : undefined;
      const failure = diagnose(cmd, startError ?? 'the server exited while starting', probe);
      this.output.error(failure.message);
      this.events.serverState('failed', failure.message);
      void this.offerFix(cmd, failure);
      return false;
    }
    client.starting = false;
    return true;
  }

  private listen(client: LanguageClient): void {
    client.onNotification(protocol.TESTS_CHANGED, (p: protocol.TestsChanged) => this.events.testsChanged(p));
    client.onNotification(protocol.RUN_STARTED, (p: protocol.RunStarted) => this.events.runStarted(p));
    client.onNotification(protocol.TEST_RESULT, (p: protocol.TestResult) => this.events.testResult(p));
    client.onNotification(protocol.RUN_FINISHED, (p: protocol.RunFinished) => this.events.runFinished(p));
    client.onNotification(protocol.COVERAGE, (p: protocol.CoverageMsg) => this.events.coverage(p));
    client.onNotification(protocol.STATUS, (p: protocol.StatusMsg) => this.events.status(p));
    // Every state change shows, including the client's own restarts after a crash.
    client.onDidChangeState(({ newState }) => {
      if (this.client !== client) {
        return;
      }
      const detail = this.command ? describeCommand(this.command) : undefined;
      if (newState === State.Starting) {
        this.events.serverState('starting', detail);
      } else if (newState === State.Running) {
        this.events.serverState('running', detail);
      } else if (this.gaveUp) {
        this.events.serverState('failed', this.gaveUp);
      } else {
        this.events.serverState('stopped');
      }
    });
  }

  private onClosed(): { action: CloseAction; handled: boolean } {
    if (!this.running && this.starting) {
      return { action: CloseAction.DoNotRestart, handled: true }; // start() reports it
    }
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < RESTART_WINDOW_MS), now];
    if (this.crashes.length <= RESTARTS_ALLOWED) {
      this.output.warn(`the server stopped; restarting (${this.crashes.length}/${RESTARTS_ALLOWED})`);
      return { action: CloseAction.Restart, handled: true };
    }
    const message = `tach-ls: the server stopped ${this.crashes.length} times in 3 minutes and will not be restarted.`;
    this.gaveUp = message;
    void vscode.window.showErrorMessage(message, 'Restart', 'Show Log').then((choice) => {
      if (choice === 'Restart') {
        void this.restart();
      } else if (choice === 'Show Log') {
        this.output.show();
      }
    });
    return { action: CloseAction.DoNotRestart, handled: true };
  }

  private async offerFix(cmd: ServerCommand, failure: StartFailure): Promise<void> {
    const actions: string[] = [];
    if (failure.kind === 'not-installed' && cmd.python) {
      actions.push('Install tach-ls');
    }
    if (PythonInterpreter.available()) {
      actions.push('Select Interpreter');
    }
    actions.push('Set Server Command', 'Show Log');
    const choice = await vscode.window.showErrorMessage(failure.message, ...actions);
    switch (choice) {
      case 'Install tach-ls': {
        const terminal = vscode.window.createTerminal({ name: 'tach-ls: install' });
        terminal.show();
        terminal.sendText(`${JSON.stringify(cmd.python)} -m pip install tach-ls`);
        void vscode.window.showInformationMessage('When the install has finished, restart tach-ls.', 'Restart').then((again) => {
          if (again === 'Restart') {
            void this.restart();
          }
        });
        break;
      }
      case 'Select Interpreter':
        await vscode.commands.executeCommand('python.setInterpreter');
        break;
      case 'Set Server Command':
        await vscode.commands.executeCommand('workbench.action.openSettings', `${protocol.SETTINGS_SECTION}.serverCommand`);
        break;
      case 'Show Log':
        this.output.show();
        break;
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) {
      await client.stop().catch((error: unknown) => this.output.warn(`stopping the server: ${errorText(error)}`));
      await client.dispose().catch(() => undefined);
    }
  }

  async restart(): Promise<boolean> {
    await this.starting?.catch(() => false);
    this.crashes = [];
    this.gaveUp = undefined;
    await this.stop();
    this.events.serverState('stopped');
    return this.start();
  }

  /** Run a `tach.*` command on the server; rejects with the server's message when it fails. */
  async executeCommand<T>(command: string, args: unknown[]): Promise<T> {
    if (this.starting) {
      await this.starting;
    }
    const client = this.client;
    if (!client || !this.running) {
      throw new Error('the tach-ls server is not running (see the tach-ls output)');
    }
    return (await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args })) as T;
  }

  /** While a continuous run lasts, run-on-save is on. */
  async setContinuous(on: boolean): Promise<void> {
    if (this.continuous !== on) {
      this.continuous = on;
      await this.sendSettings();
    }
  }

  async sendSettings(): Promise<void> {
    const client = this.client;
    if (!client || !this.running) {
      return;
    }
    const settings = currentSettings();
    const interpreter = settings.python ? undefined : await this.python.executable();
    const payload = settingsPayload(serverSettings(settings, interpreter, this.continuous));
    await client.sendNotification(DidChangeConfigurationNotification.type, { settings: payload });
  }

  dispose(): void {
    for (const d of this.disposables) {
      d.dispose();
    }
    void this.stop();
  }
}

export function errorText(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  if (typeof error === 'object' && error !== null && 'message' in error) {
    return String(error.message);
  }
  return String(error);
}
