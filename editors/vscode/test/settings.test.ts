/** Settings -> the server's section, and which command starts the server (and why it did not). */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { diagnose, resolveServerCommand } from '../src/common/serverCommand';
import { DEFAULTS, readSettings, serverSettings, settingsPayload } from '../src/common/settings';

function config(values: Record<string, unknown>): { get<T>(k: string): T | undefined } {
  return { get: <T>(k: string) => values[k] as T | undefined };
}

describe('settings', () => {
  test('defaults when nothing is set', () => {
    assert.deepEqual(readSettings(config({})), DEFAULTS);
  });

  test('invalid values fall back to defaults instead of reaching the server', () => {
    const s = readSettings(config({ runOnSave: 'always', isolation: 3, isolationScope: 'module', workers: 0, timeout: -1, coverage: 'yes', serverCommand: 'tach-ls serve' }));
    assert.deepEqual(s, DEFAULTS);
  });

  test('the contract section: python from the setting, else the interpreter, else null', () => {
    const s = readSettings(config({ runOnSave: 'file', coverage: true, isolation: 'strict', isolationScope: 'test', workers: 2, timeout: 30 }));
    assert.deepEqual(serverSettings(s, '/venv/bin/python', false), {
      python: '/venv/bin/python',
      runOnSave: 'file',
      coverage: true,
      isolation: 'strict',
      isolationScope: 'test',
      workers: 2,
      timeout: 30,
    });
    assert.equal(serverSettings({ ...s, python: '/other/python' }, '/venv/bin/python', false).python, '/other/python');
    assert.equal(serverSettings(s, undefined, false).python, null);
    assert.deepEqual(Object.keys(settingsPayload(serverSettings(s, undefined, false))), ['tach-ls']);
  });

  test("a continuous run turns run-on-save on, without overriding the user's choice", () => {
    assert.equal(serverSettings(DEFAULTS, undefined, true).runOnSave, 'affected');
    assert.equal(serverSettings({ ...DEFAULTS, runOnSave: 'file' }, undefined, true).runOnSave, 'file');
    assert.equal(serverSettings(DEFAULTS, undefined, false).runOnSave, 'off');
  });
});

describe('server command', () => {
  test('the setting first, then the Python extension interpreter, then python3', () => {
    assert.deepEqual(resolveServerCommand(['/opt/tach/bin/tach-ls', 'serve'], '/venv/bin/python'), {
      command: '/opt/tach/bin/tach-ls',
      args: ['serve'],
      source: 'setting',
    });
    assert.deepEqual(resolveServerCommand([], '/venv/bin/python'), {
      command: '/venv/bin/python',
      args: ['-m', 'tach_ls'],
      source: 'python-extension',
      python: '/venv/bin/python',
    });
    assert.equal(resolveServerCommand([], undefined).command, 'python3');
    assert.equal(resolveServerCommand(['/venv/bin/python', '-m', 'tach_ls'], undefined).python, '/venv/bin/python', 'probed when it fails');
  });

  test('not installed in that interpreter: says so and how to fix it', () => {
    const cmd = resolveServerCommand([], '/venv/bin/python');
    const failure = diagnose(cmd, 'Connection closed', { exitCode: 1, stderr: "Traceback...\nModuleNotFoundError: No module named 'tach_ls'\n" });
    assert.equal(failure.kind, 'not-installed');
    assert.match(failure.message, /tach-ls is not installed in \/venv\/bin\/python.*pip install tach-ls.*tach-ls\.serverCommand/);
  });

  test('no such interpreter', () => {
    const failure = diagnose(resolveServerCommand([], '/gone/python'), 'spawn /gone/python ENOENT', { spawnError: 'ENOENT', exitCode: null, stderr: '' });
    assert.equal(failure.kind, 'no-interpreter');
    assert.match(failure.message, /\/gone\/python` was not found/);
  });

  test('installed but the server still failed: the start error and the log', () => {
    const failure = diagnose(resolveServerCommand(['tach-ls', 'serve'], undefined), 'Connection closed', undefined);
    assert.equal(failure.kind, 'crashed');
    assert.match(failure.message, /tach-ls serve.*Connection closed/);
  });
});
