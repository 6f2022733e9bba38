/**
 * Which command starts the server, and why it did not start. Order: the
 * `tach-ls.serverCommand` setting, else `<Python extension's interpreter> -m
 * tach_ls`, else `python3 -m tach_ls`. When the server cannot start, a probe
 * (`<python> -c "import tach_ls"`) tells "not installed in that interpreter"
 * apart from other failures, so the notification can offer the right fix.
 */

import { execFile } from 'node:child_process';

export type CommandSource = 'setting' | 'python-extension' | 'default';

export interface ServerCommand {
  command: string;
  args: string[];
  source: CommandSource;
  /** The interpreter the command runs, when it is `<python> -m tach_ls`. */
  python?: string;
}

export const DEFAULT_PYTHON = 'python3';

export function resolveServerCommand(setting: readonly string[], interpreter: string | undefined): ServerCommand {
  const [command, ...args] = setting;
  if (command) {
    const runsModule = args[0] === '-m' && args[1] === 'tach_ls';
    return runsModule ? { command, args, source: 'setting', python: command } : { command, args, source: 'setting' };
  }
  if (interpreter) {
    return { command: interpreter, args: ['-m', 'tach_ls'], source: 'python-extension', python: interpreter };
  }
  return { command: DEFAULT_PYTHON, args: ['-m', 'tach_ls'], source: 'default', python: DEFAULT_PYTHON };
}

export function describeCommand(cmd: ServerCommand): string {
  return [cmd.command, ...cmd.args].map((part) => (/\s/.test(part) ? JSON.stringify(part) : part)).join(' ');
}

export type FailureKind = 'no-interpreter' | 'not-installed' | 'crashed';

export interface StartFailure {
  kind: FailureKind;
  message: string;
}

export interface ProbeResult {
  /** The interpreter could not be run at all (ENOENT...). */
  spawnError?: string;
  exitCode: number | null;
  stderr: string;
}

/** Run `<python> -c "import tach_ls"` (bounded) where the server ran: the cwd is on `sys.path`. */
export function probeImport(python: string, cwd: string | undefined, timeoutMs = 15000): Promise<ProbeResult> {
  return new Promise((resolve) => {
    execFile(python, ['-c', 'import tach_ls'], { timeout: timeoutMs, cwd }, (error, _stdout, stderr) => {
      if (error && typeof error.code === 'string') {
        resolve({ spawnError: `${error.code}: ${error.message}`, exitCode: null, stderr: String(stderr) });
        return;
      }
      resolve({ exitCode: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stderr: String(stderr) });
    });
  });
}

/** What went wrong, from the start error and (for `<python> -m tach_ls`) the import probe. */
export function diagnose(cmd: ServerCommand, startError: string, probe: ProbeResult | undefined): StartFailure {
  const shown = describeCommand(cmd);
  if (probe?.spawnError || /ENOENT/.test(startError)) {
    const what = cmd.python ?? cmd.command;
    return {
      kind: 'no-interpreter',
      message: `tach-ls could not start: \`${what}\` was not found. Select a Python interpreter that has tach-ls, or set tach-ls.serverCommand.`,
    };
  }
  if (probe && probe.exitCode !== 0) {
    const missing = /No module named ['"]?tach_ls/.test(probe.stderr);
    const detail = missing ? 'tach-ls is not installed in' : `importing tach_ls fails in`;
    const lastLine = probe.stderr.trim().split('\n').pop() ?? '';
    return {
      kind: 'not-installed',
      message: `tach-ls could not start: ${detail} ${cmd.python ?? cmd.command}${missing ? '' : ` (${lastLine})`}. Install it there (pip install tach-ls) or set tach-ls.serverCommand.`,
    };
  }
  return { kind: 'crashed', message: `tach-ls could not start with \`${shown}\`: ${startError}. See the tach-ls output for the server's log.` };
}
