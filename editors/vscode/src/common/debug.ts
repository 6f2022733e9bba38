/**
 * Debugging a test: `tach.debugTest` answers where the test's worker waits
 * for a debugger (`{host, port}`: debugpy's adapter, which speaks DAP), and
 * VS Code attaches to it. With the Python Debugger extension installed the
 * session is its `debugpy` type; without it, tach-ls's own `tach-ls-attach`
 * type, whose adapter descriptor is simply that address: VS Code speaks DAP
 * to debugpy directly. `parseEndpoint`, `debugType`, `debugConfiguration`
 * and `adapterEndpoint` are pure.
 */

import * as vscode from 'vscode';

import type { DebugEndpoint, NodeId } from './protocol';

export const DEBUGPY_EXTENSION_ID = 'ms-python.debugpy';
/** tach-ls's debug type (contributed in package.json) for when the Python Debugger extension is missing. */
export const FALLBACK_DEBUG_TYPE = 'tach-ls-attach';

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

/** The Python Debugger extension's type when it is installed (it brings breakpoints UI, and so on), else ours. */
export function debugType(hasDebugpy: boolean): string {
  return hasDebugpy ? 'debugpy' : FALLBACK_DEBUG_TYPE;
}

/** An attach configuration both types understand (debugpy's adapter reads `justMyCode`). */
export function debugConfiguration(endpoint: DebugEndpoint, nodeid: NodeId, hasDebugpy: boolean): vscode.DebugConfiguration {
  return {
    type: debugType(hasDebugpy),
    request: 'attach',
    name: `tach-ls: ${nodeid}`,
    connect: { host: endpoint.host, port: endpoint.port },
    justMyCode: false,
  };
}

/** Where a `tach-ls-attach` session's adapter listens (its `connect`), or why that cannot be used. */
export function adapterEndpoint(configuration: { readonly [key: string]: unknown }): DebugEndpoint | string {
  const endpoint = parseEndpoint(configuration.connect);
  if (typeof endpoint === 'string') {
    return `a ${FALLBACK_DEBUG_TYPE} configuration needs "connect": {"host", "port"}, got ${JSON.stringify(configuration.connect)}`;
  }
  return endpoint;
}

/** `tach-ls-attach` sessions: VS Code connects to debugpy's adapter in the worker, no adapter of ours in between. */
export function registerFallbackDebugger(): vscode.Disposable {
  return vscode.debug.registerDebugAdapterDescriptorFactory(FALLBACK_DEBUG_TYPE, {
    createDebugAdapterDescriptor(session: vscode.DebugSession): vscode.DebugAdapterDescriptor {
      const endpoint = adapterEndpoint(session.configuration);
      if (typeof endpoint === 'string') {
        throw new Error(endpoint);
      }
      return new vscode.DebugAdapterServer(endpoint.port, endpoint.host);
    },
  });
}

/** Attach VS Code's debugger; resolves when the session ends (false if it could not start). */
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
