/**
 * The Python extension's active interpreter, through its public API
 * (`@vscode/python-extension`), when that extension is installed; nothing
 * otherwise. tach-ls uses it to start the server (`<interpreter> -m tach_ls`)
 * and as the project's interpreter, and restarts when the user picks another.
 */

import { PythonExtension } from '@vscode/python-extension';
import * as vscode from 'vscode';

export const PYTHON_EXTENSION_ID = 'ms-python.python';

export class PythonInterpreter implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires when the user selects another interpreter in the Python extension. */
  readonly onDidChange = this.changed.event;
  private subscription?: vscode.Disposable;
  private api?: PythonExtension;

  /** Whether the Python extension is installed (and not disabled). */
  static available(): boolean {
    return vscode.extensions.getExtension(PYTHON_EXTENSION_ID) !== undefined;
  }

  /** The active interpreter's executable for `resource` (or the first folder), if the Python extension has one. */
  async executable(resource?: vscode.Uri): Promise<string | undefined> {
    const api = await this.load();
    if (!api) {
      return undefined;
    }
    try {
      const active = api.environments.getActiveEnvironmentPath(resource ?? vscode.workspace.workspaceFolders?.[0]?.uri);
      const resolved = await api.environments.resolveEnvironment(active);
      return resolved?.executable.uri?.fsPath ?? active.path;
    } catch {
      return undefined;
    }
  }

  private async load(): Promise<PythonExtension | undefined> {
    if (this.api || !PythonInterpreter.available()) {
      return this.api;
    }
    try {
      this.api = await PythonExtension.api();
      this.subscription = this.api.environments.onDidChangeActiveEnvironmentPath(() => this.changed.fire());
    } catch {
      this.api = undefined; // installed but failed to activate: behave as if absent
    }
    return this.api;
  }

  dispose(): void {
    this.subscription?.dispose();
    this.changed.dispose();
  }
}
