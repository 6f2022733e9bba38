/**
 * Debugging a test: `tach.debugTest` answers where the test's worker waits
 * for a debugger (`{host, port}`), and VS Code attaches to it with the
 * Python debugger (debugpy). `debugConfiguration` and `parseEndpoint` are pure.
 */

import * as vscode from 'vscode';

import type { DebugEndpoint, NodeId } from './protocol';

export const DEBUGPY_EXTENSION_ID = 'ms-python.debugpy';

/** `{host, port}` from the server's answer, or a message saying what is wrong with it. */
export function parseEndpoint(answer: unknown): DebugEndpoint | string {
  if (typeof answer !== 'object' || answer === null) {
    return `tach.debugTest answered ${JSON.stringify(answer)}, not {host, port}`;
  }
  const { host, port } = answer as { host?: unknown; port?: unknown };
  if (typeof port !== 'number' || !Number.isInteger(port) || port <= 0 || port > 65535) {
    return `tach.debugTest answered no usable port: ${JSON.stringify(answer)}`;
  }
  return { host: typeof host === 'string' && host ? host : '127.0.0.1', port };
}

export function debugConfiguration(endpoint: DebugEndpoint, nodeid: NodeId, hasDebugpy: boolean): vscode.DebugConfiguration {
  return {
    type: hasDebugpy ? 'debugpy' : 'python',
    request: 'attach',
    name: `tach-ls: ${nodeid}`,
    connect: { host: endpoint.host, port: endpoint.port },
    justMyCode: false,
  };
}

/** Attach VS Code's Python debugger; resolves when the session ends (false if it could not start). */
export async function attach(endpoint: DebugEndpoint, nodeid: NodeId, folder: vscode.WorkspaceFolder | undefined, run?: vscode.TestRun): Promise<boolean> {
  const config = debugConfiguration(endpoint, nodeid, vscode.extensions.getExtension(DEBUGPY_EXTENSION_ID) !== undefined);
  let session: vscode.DebugSession | undefined;
  let ended: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    ended = resolve;
  });
  const subscriptions = [
    vscode.debug.onDidStartDebugSession((s) => {
      if (!session && s.configuration.name === config.name) {
        session = s;
      }
    }),
    vscode.debug.onDidTerminateDebugSession((s) => {
      if (session && s.id === session.id) {
        ended();
      }
    }),
  ];
  try {
    if (!(await vscode.debug.startDebugging(folder, config, run ? { testRun: run } : undefined))) {
      return false;
    }
    await done;
    return true;
  } finally {
    for (const s of subscriptions) {
      s.dispose();
    }
  }
}
