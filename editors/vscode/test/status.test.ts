/** The status bar: server state first, then the least ready engine, the reason of a failure on hover. */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, test } from 'node:test';

import { adapterEndpoint, debugConfiguration, FALLBACK_DEBUG_TYPE, parseEndpoint, registerFallbackDebugger } from '../src/common/debug';
import { StatusBar, statusView } from '../src/common/status';
import { recorded } from './helpers';
import * as stub from './stub/vscode';

const A = 'file:///work/a';
const B = 'file:///work/b%20c';

describe('statusView', () => {
  test('the recorded engine states: warming, then ready', () => {
    const [base, collected, ready] = recorded().status;
    assert.ok(base && collected && ready);
    assert.match(statusView('running', undefined, [base]).text, /loading~spin.*warming/);
    assert.match(statusView('running', undefined, [collected]).tooltip, /warming \(collected\): collecting/);
    assert.equal(statusView('running', undefined, [ready]).text, '$(zap) tach-ls');
  });

  test('a failed engine shows its reason on hover, whatever the other folders do', () => {
    const view = statusView('running', undefined, [
      { folder: A, state: 'ready' },
      { folder: B, state: 'failed', layer: 'base', detail: 'No module named pytest' },
    ]);
    assert.equal(view.severity, 'error');
    assert.equal(view.text, '$(error) tach-ls: failed');
    assert.match(view.tooltip, /b c: failed \(base\): No module named pytest/);
    assert.match(view.tooltip, /a: ready/);
  });

  test('rebuilding', () => {
    assert.match(statusView('running', undefined, [{ folder: A, state: 'rebuilding', layer: 'collected' }]).text, /sync~spin.*rebuilding/);
  });

  test('the server itself: starting, failed to start, stopped', () => {
    assert.equal(statusView('starting', 'python3 -m tach_ls', []).severity, 'busy');
    const failed = statusView('failed', 'tach-ls is not installed in python3', [{ folder: A, state: 'ready' }]);
    assert.equal(failed.severity, 'error');
    assert.match(failed.tooltip, /not installed/);
    assert.equal(statusView('stopped', undefined, []).severity, 'warning');
  });
});

describe('StatusBar', () => {
  beforeEach(() => stub.resetStub());

  test('renders into the item and forgets engines when the server stops', () => {
    const bar = new StatusBar('tach-ls.showLog');
    bar.serverState('running');
    bar.engine({ folder: A, state: 'failed', detail: 'boom' });
    assert.equal(bar.view().severity, 'error');
    bar.serverState('stopped');
    assert.equal(bar.view().severity, 'warning');
  });
});

describe('debug', () => {
  test('parseEndpoint accepts {host, port} and explains anything else', () => {
    assert.deepEqual(parseEndpoint({ host: 'localhost', port: 5678 }), { host: 'localhost', port: 5678 });
    assert.deepEqual(parseEndpoint({ port: 5678 }), { host: '127.0.0.1', port: 5678 });
    assert.match(parseEndpoint(null) as string, /not \{host, port\}/);
    assert.match(parseEndpoint({ host: 'x', port: 'nope' }) as string, /no usable port/);
  });

  test('debugConfiguration attaches with debugpy when installed, else with tach-ls-attach', () => {
    const cfg = debugConfiguration({ host: 'h', port: 1 }, 't::x', true);
    assert.deepEqual(cfg, { type: 'debugpy', request: 'attach', name: 'tach-ls: t::x', connect: { host: 'h', port: 1 }, justMyCode: false });
    assert.equal(debugConfiguration({ host: 'h', port: 1 }, 't::x', false).type, FALLBACK_DEBUG_TYPE);
  });

  test('the fallback type is contributed in package.json, with an attach configuration and Python breakpoints', () => {
    const manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
      contributes: { debuggers: { type: string; configurationAttributes: Record<string, { required: string[] }> }[]; breakpoints: { language: string }[] };
    };
    const contributed = manifest.contributes.debuggers.find((d) => d.type === FALLBACK_DEBUG_TYPE);
    assert.deepEqual(contributed?.configurationAttributes.attach?.required, ['connect']);
    // Without a debugger that declares Python breakpoints, VS Code lets nobody set one in a .py file.
    assert.ok(manifest.contributes.breakpoints.some((b) => b.language === 'python'));
  });

  test('adapterEndpoint reads connect, or says what is missing', () => {
    assert.deepEqual(adapterEndpoint({ connect: { host: '127.0.0.1', port: 4711 } }), { host: '127.0.0.1', port: 4711 });
    assert.match(adapterEndpoint({}) as string, /tach-ls-attach configuration needs "connect"/);
  });

  test('a tach-ls-attach session connects VS Code to debugpy\'s adapter at its address', () => {
    const registration = registerFallbackDebugger();
    const factory = stub.debugState.factories.get(FALLBACK_DEBUG_TYPE);
    assert.ok(factory);
    const descriptor = factory.createDebugAdapterDescriptor({ configuration: { type: FALLBACK_DEBUG_TYPE, connect: { host: '127.0.0.1', port: 4711 } } });
    assert.ok(descriptor instanceof stub.DebugAdapterServer);
    assert.deepEqual([descriptor.host, descriptor.port], ['127.0.0.1', 4711]);
    assert.throws(() => factory.createDebugAdapterDescriptor({ configuration: { type: FALLBACK_DEBUG_TYPE } }), /needs "connect"/);
    registration.dispose();
    assert.equal(stub.debugState.factories.size, 0);
  });
});
