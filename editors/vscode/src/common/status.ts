/**
 * The status bar item: the server (starting, failed to start) and each
 * folder's warm engine from `tach/status` (warming, ready, rebuilding,
 * failed with the reason on hover). Several folders show the least ready
 * one. Clicking shows the tach-ls output. `statusView` is pure.
 */

import * as vscode from 'vscode';

import type { ServerState } from './client';
import type { StatusMsg } from './protocol';

export interface StatusView {
  text: string;
  tooltip: string;
  severity: 'ok' | 'busy' | 'warning' | 'error';
}

const ENGINE_TEXT: Record<string, { icon: string; label: string; severity: StatusView['severity']; rank: number }> = {
  failed: { icon: '$(error)', label: 'failed', severity: 'error', rank: 0 },
  starting: { icon: '$(loading~spin)', label: 'warming', severity: 'busy', rank: 1 },
  rebuilding: { icon: '$(sync~spin)', label: 'rebuilding', severity: 'busy', rank: 2 },
  stopped: { icon: '$(circle-slash)', label: 'stopped', severity: 'warning', rank: 3 },
  ready: { icon: '$(zap)', label: 'ready', severity: 'ok', rank: 4 },
};

function folderName(uri: string): string {
  const last = uri.replace(/\/+$/, '').split('/').pop() ?? uri;
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

function engineLine(msg: StatusMsg): string {
  const view = ENGINE_TEXT[msg.state];
  const label = view?.label ?? msg.state;
  const layer = msg.layer ? ` (${msg.layer})` : '';
  const detail = msg.detail ? `: ${msg.detail}` : '';
  return `${folderName(msg.folder)}: ${label}${layer}${detail}`;
}

export function statusView(server: ServerState, serverDetail: string | undefined, engines: readonly StatusMsg[]): StatusView {
  if (server === 'failed') {
    return { text: '$(error) tach-ls', tooltip: `tach-ls did not start: ${serverDetail ?? 'see the output'}`, severity: 'error' };
  }
  if (server === 'starting') {
    return { text: '$(loading~spin) tach-ls', tooltip: `Starting the tach-ls server${serverDetail ? `: ${serverDetail}` : ''}`, severity: 'busy' };
  }
  if (server === 'stopped') {
    return { text: '$(circle-slash) tach-ls', tooltip: 'The tach-ls server is not running', severity: 'warning' };
  }
  if (engines.length === 0) {
    return { text: '$(beaker) tach-ls', tooltip: 'tach-ls: server running; the test engine starts with the first folder', severity: 'ok' };
  }
  const worst = [...engines].sort((a, b) => (ENGINE_TEXT[a.state]?.rank ?? 0) - (ENGINE_TEXT[b.state]?.rank ?? 0))[0] as StatusMsg;
  const view = ENGINE_TEXT[worst.state] ?? { icon: '$(question)', label: worst.state, severity: 'warning' as const, rank: 0 };
  return {
    text: `${view.icon} tach-ls${view.severity === 'ok' ? '' : `: ${view.label}`}`,
    tooltip: ['tach-ls test engine', ...engines.map(engineLine)].join('\n'),
    severity: view.severity,
  };
}

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private server: ServerState = 'starting';
  private serverDetail?: string;
  private readonly engines = new Map<string, StatusMsg>();

  constructor(showLogCommand: string) {
    this.item = vscode.window.createStatusBarItem('tach-ls.status', vscode.StatusBarAlignment.Left, 50);
    this.item.name = 'tach-ls';
    this.item.command = showLogCommand;
    this.render();
    this.item.show();
  }

  serverState(state: ServerState, detail?: string): void {
    this.server = state;
    this.serverDetail = detail;
    if (state !== 'running') {
      this.engines.clear();
    }
    this.render();
  }

  engine(msg: StatusMsg): void {
    this.engines.set(msg.folder, msg);
    this.render();
  }

  /** What the item shows now (for tests and logs). */
  view(): StatusView {
    return statusView(this.server, this.serverDetail, [...this.engines.values()]);
  }

  private render(): void {
    const view = this.view();
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor =
      view.severity === 'error'
        ? new vscode.ThemeColor('statusBarItem.errorBackground')
        : view.severity === 'warning'
          ? new vscode.ThemeColor('statusBarItem.warningBackground')
          : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
