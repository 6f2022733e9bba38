/**
 * The `tach-ls.*` settings -> the server's settings section (the DESIGN
 * contract: `python`, `runOnSave`, `coverage`, `isolation`, `isolationScope`, `workers`,
 * `timeout`), sent as `initializationOptions` and on every change. Invalid
 * values fall back to the defaults here rather than reach the server.
 */

import * as vscode from 'vscode';

import { SETTINGS_SECTION, type ServerSettings } from './protocol';

export interface ExtensionSettings {
  /** Command line that starts the server; empty: derive it from the interpreter. */
  serverCommand: string[];
  python: string;
  runOnSave: ServerSettings['runOnSave'];
  coverage: boolean;
  isolation: ServerSettings['isolation'];
  isolationScope: ServerSettings['isolationScope'];
  workers: number | null;
  timeout: number;
}

export const DEFAULTS: ExtensionSettings = {
  serverCommand: [],
  python: '',
  runOnSave: 'off',
  coverage: false,
  isolation: 'auto',
  isolationScope: 'batch',
  workers: null,
  timeout: 300,
};

/** The part of `WorkspaceConfiguration` read here (a plain object in tests). */
export interface ConfigLike {
  get<T>(section: string): T | undefined;
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], fallback: T): T {
  return typeof value === 'string' && (allowed as readonly string[]).includes(value) ? (value as T) : fallback;
}

export function readSettings(config: ConfigLike): ExtensionSettings {
  const command = config.get<unknown>('serverCommand');
  const workers = config.get<unknown>('workers');
  const timeout = config.get<unknown>('timeout');
  const python = config.get<unknown>('python');
  return {
    serverCommand: Array.isArray(command) && command.every((c) => typeof c === 'string') ? command.filter((c) => c !== '') : [],
    python: typeof python === 'string' ? python.trim() : '',
    runOnSave: oneOf(config.get('runOnSave'), ['off', 'file', 'affected'], DEFAULTS.runOnSave),
    coverage: config.get<unknown>('coverage') === true,
    isolation: oneOf(config.get('isolation'), ['off', 'auto', 'strict'], DEFAULTS.isolation),
    isolationScope: oneOf(config.get('isolationScope'), ['batch', 'test'], DEFAULTS.isolationScope),
    workers: typeof workers === 'number' && Number.isInteger(workers) && workers > 0 ? workers : null,
    timeout: typeof timeout === 'number' && timeout > 0 ? timeout : DEFAULTS.timeout,
  };
}

/**
 * The server's section. `python`: the setting, else the Python extension's
 * interpreter, else null (the server looks for a venv). A continuous run in
 * the Test Explorer turns run-on-save on ('affected') while it lasts.
 */
export function serverSettings(settings: ExtensionSettings, interpreter: string | undefined, continuous: boolean): ServerSettings {
  return {
    python: settings.python || interpreter || null,
    runOnSave: continuous && settings.runOnSave === 'off' ? 'affected' : settings.runOnSave,
    coverage: settings.coverage,
    isolation: settings.isolation,
    isolationScope: settings.isolationScope,
    workers: settings.workers,
    timeout: settings.timeout,
  };
}

/** `{"tach-ls": {...}}`: the shape of `initializationOptions` and of `didChangeConfiguration`'s settings. */
export function settingsPayload(settings: ServerSettings): Record<string, ServerSettings> {
  return { [SETTINGS_SECTION]: settings };
}

export function currentSettings(): ExtensionSettings {
  return readSettings(vscode.workspace.getConfiguration(SETTINGS_SECTION));
}

/** Settings changes that need a new server process (the rest are sent to the running one). */
export function needsRestart(event: vscode.ConfigurationChangeEvent): boolean {
  return event.affectsConfiguration(`${SETTINGS_SECTION}.serverCommand`);
}
