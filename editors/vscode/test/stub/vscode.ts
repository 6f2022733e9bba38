/**
 * A stand-in for the `vscode` module in unit tests (esbuild aliases `vscode`
 * to this file). It implements the value classes the extension builds
 * (Uri, Range, TestMessage, FileCoverage...) and records what is done to a
 * TestController and its TestRuns, so tests assert on calls, not on a UI.
 * Only what the extension uses is here.
 */

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly path: string,
    private readonly text: string,
  ) {}

  static parse(value: string): Uri {
    const match = /^([a-z][a-z0-9+.-]*):(?:\/\/[^/]*)?(.*)$/i.exec(value);
    return new Uri(match?.[1] ?? 'file', match?.[2] ?? value, value);
  }

  static file(path: string): Uri {
    return new Uri('file', path, `file://${path.split('/').map(encodeURIComponent).join('/')}`);
  }

  get fsPath(): string {
    return decodeURIComponent(this.path);
  }

  toString(): string {
    return this.text;
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(startLine: number, startCharacter: number, endLine: number, endCharacter: number) {
    this.start = new Position(startLine, startCharacter);
    this.end = new Position(endLine, endCharacter);
  }
}

export class Location {
  constructor(
    readonly uri: Uri,
    readonly range: Range | Position,
  ) {}
}

export class MarkdownString {
  constructor(readonly value = '') {}
}

export class TestMessage {
  expectedOutput?: string;
  actualOutput?: string;
  location?: Location;
  constructor(public message: string | MarkdownString) {}

  static diff(message: string, expected: string, actual: string): TestMessage {
    const m = new TestMessage(message);
    m.expectedOutput = expected;
    m.actualOutput = actual;
    return m;
  }
}

export class TestTag {
  constructor(readonly id: string) {}
}

export class TestCoverageCount {
  constructor(
    public covered: number,
    public total: number,
  ) {}
}

export class FileCoverage {
  constructor(
    readonly uri: Uri,
    public statementCoverage: TestCoverageCount,
    public branchCoverage?: TestCoverageCount,
    public declarationCoverage?: TestCoverageCount,
    public includesTests?: FakeTestItem[],
  ) {}
}

export class StatementCoverage {
  constructor(
    public executed: number | boolean,
    public location: Position | Range,
  ) {}
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export enum TestRunProfileKind {
  Run = 1,
  Debug = 2,
  Coverage = 3,
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export class Disposable {
  constructor(private readonly fn: () => void = () => undefined) {}
  dispose(): void {
    this.fn();
  }
}

type Listener<T> = (value: T) => void;

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  readonly event = (listener: Listener<T>): Disposable => {
    this.listeners.push(listener);
    return new Disposable(() => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    });
  };
  fire(value: T): void {
    for (const l of [...this.listeners]) {
      l(value);
    }
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class CancellationTokenSource {
  private readonly emitter = new EventEmitter<void>();
  readonly token = {
    isCancellationRequested: false,
    onCancellationRequested: this.emitter.event,
  };
  cancel(): void {
    this.token.isCancellationRequested = true;
    this.emitter.fire();
  }
}

// -- the Testing API ------------------------------------------------------------------------------

export class FakeCollection {
  private readonly map = new Map<string, FakeTestItem>();
  replaceCalls = 0;

  get size(): number {
    return this.map.size;
  }
  get(id: string): FakeTestItem | undefined {
    return this.map.get(id);
  }
  add(item: FakeTestItem): void {
    this.map.set(item.id, item);
  }
  delete(id: string): void {
    this.map.delete(id);
  }
  replace(items: readonly FakeTestItem[]): void {
    this.replaceCalls += 1;
    this.map.clear();
    for (const item of items) {
      this.map.set(item.id, item);
    }
  }
  forEach(fn: (item: FakeTestItem) => void): void {
    this.map.forEach((item) => fn(item));
  }
  [Symbol.iterator](): Iterator<[string, FakeTestItem]> {
    return this.map[Symbol.iterator]();
  }
  /** Ids, sorted the way the Test Explorer sorts (sortText, else label). */
  sortedIds(): string[] {
    return [...this.map.values()].sort((a, b) => (a.sortText ?? a.label).localeCompare(b.sortText ?? b.label)).map((i) => i.id);
  }
}

export class FakeTestItem {
  readonly children = new FakeCollection();
  range?: Range;
  description?: string;
  sortText?: string;
  error?: string;
  tags: TestTag[] = [];
  canResolveChildren = false;
  busy = false;
  /** How many times a property was set after creation (to check updates are minimal). */
  sets = 0;

  constructor(
    readonly id: string,
    private labelValue: string,
    readonly uri?: Uri,
  ) {
    return new Proxy(this, {
      set: (target, prop, value: unknown) => {
        (target as unknown as Record<string | symbol, unknown>)[prop] = value;
        if (prop !== 'sets') {
          target.sets += 1;
        }
        return true;
      },
    });
  }

  get label(): string {
    return this.labelValue;
  }
  set label(value: string) {
    this.labelValue = value;
  }
}

export class TestRunRequest {
  constructor(
    readonly include?: readonly FakeTestItem[],
    readonly exclude?: readonly FakeTestItem[],
    readonly profile?: FakeProfile,
    readonly continuous?: boolean,
    readonly preserveFocus = true,
  ) {}
}

export interface RunEvent {
  op: 'enqueued' | 'started' | 'passed' | 'failed' | 'errored' | 'skipped' | 'output' | 'coverage' | 'end';
  id?: string;
  duration?: number;
  messages?: TestMessage[];
  output?: string;
  location?: Location;
  coverage?: FileCoverage;
}

export class FakeTestRun {
  readonly events: RunEvent[] = [];
  ended = false;
  readonly token = new CancellationTokenSource().token;
  readonly isPersisted = true;
  readonly onDidDispose = new EventEmitter<void>().event;

  constructor(
    readonly request: TestRunRequest,
    readonly name: string | undefined,
  ) {}

  private push(event: RunEvent): void {
    if (this.ended) {
      throw new Error(`${event.op} on an ended run`);
    }
    this.events.push(event);
  }
  enqueued(item: FakeTestItem): void {
    this.push({ op: 'enqueued', id: item.id });
  }
  started(item: FakeTestItem): void {
    this.push({ op: 'started', id: item.id });
  }
  skipped(item: FakeTestItem): void {
    this.push({ op: 'skipped', id: item.id });
  }
  passed(item: FakeTestItem, duration?: number): void {
    this.push({ op: 'passed', id: item.id, duration });
  }
  failed(item: FakeTestItem, message: TestMessage | TestMessage[], duration?: number): void {
    this.push({ op: 'failed', id: item.id, messages: Array.isArray(message) ? message : [message], duration });
  }
  errored(item: FakeTestItem, message: TestMessage | TestMessage[], duration?: number): void {
    this.push({ op: 'errored', id: item.id, messages: Array.isArray(message) ? message : [message], duration });
  }
  appendOutput(output: string, location?: Location, item?: FakeTestItem): void {
    this.push({ op: 'output', output, location, id: item?.id });
  }
  addCoverage(coverage: FileCoverage): void {
    this.push({ op: 'coverage', coverage });
  }
  end(): void {
    this.push({ op: 'end' });
    this.ended = true;
  }
  /** The final state reported for each item id. */
  outcomes(): Map<string, RunEvent> {
    const out = new Map<string, RunEvent>();
    for (const e of this.events) {
      if (e.id && ['passed', 'failed', 'errored', 'skipped'].includes(e.op)) {
        out.set(e.id, e);
      }
    }
    return out;
  }
}

type RunHandler = (request: TestRunRequest, token: CancellationTokenSource['token']) => Promise<void> | void;

export class FakeProfile {
  loadDetailedCoverage?: (...args: unknown[]) => Promise<unknown>;
  loadDetailedCoverageForTest?: (...args: unknown[]) => Promise<unknown>;
  constructor(
    readonly label: string,
    readonly kind: TestRunProfileKind,
    readonly runHandler: RunHandler,
    public isDefault = false,
    readonly tag?: TestTag,
    public supportsContinuousRun = false,
  ) {}
  dispose(): void {}
}

export class FakeTestController {
  readonly items = new FakeCollection();
  readonly profiles: FakeProfile[] = [];
  readonly runs: FakeTestRun[] = [];
  refreshHandler: unknown;
  resolveHandler: unknown;

  constructor(
    readonly id: string,
    public label: string,
  ) {}

  createTestItem(id: string, label: string, uri?: Uri): FakeTestItem {
    return new FakeTestItem(id, label, uri);
  }
  createRunProfile(
    label: string,
    kind: TestRunProfileKind,
    handler: RunHandler,
    isDefault?: boolean,
    tag?: TestTag,
    continuous?: boolean,
  ): FakeProfile {
    const profile = new FakeProfile(label, kind, handler, isDefault, tag, continuous);
    this.profiles.push(profile);
    return profile;
  }
  createTestRun(request: TestRunRequest, name?: string, _persist?: boolean): FakeTestRun {
    const run = new FakeTestRun(request, name);
    this.runs.push(run);
    return run;
  }
  dispose(): void {}

  /** Every item in the tree, by id. */
  all(): Map<string, FakeTestItem> {
    const out = new Map<string, FakeTestItem>();
    const walk = (c: FakeCollection): void =>
      c.forEach((item) => {
        out.set(item.id, item);
        walk(item.children);
      });
    walk(this.items);
    return out;
  }
}

export const controllers: FakeTestController[] = [];

export const tests = {
  createTestController(id: string, label: string): FakeTestController {
    const c = new FakeTestController(id, label);
    controllers.push(c);
    return c;
  },
};

// -- window, workspace, extensions, debug, commands --------------------------------------------------

export const shown: { level: 'error' | 'info' | 'warning'; message: string; actions: string[] }[] = [];

export class FakeStatusBarItem {
  text = '';
  tooltip: string | undefined;
  name: string | undefined;
  command: string | undefined;
  backgroundColor: ThemeColor | undefined;
  visible = false;
  show(): void {
    this.visible = true;
  }
  dispose(): void {}
}

export const window = {
  showErrorMessage(message: string, ...actions: string[]): Promise<string | undefined> {
    shown.push({ level: 'error', message, actions });
    return Promise.resolve(undefined);
  },
  showInformationMessage(message: string, ...actions: string[]): Promise<string | undefined> {
    shown.push({ level: 'info', message, actions });
    return Promise.resolve(undefined);
  },
  showWarningMessage(message: string, ...actions: string[]): Promise<string | undefined> {
    shown.push({ level: 'warning', message, actions });
    return Promise.resolve(undefined);
  },
  createStatusBarItem(_id?: string, _alignment?: StatusBarAlignment, _priority?: number): FakeStatusBarItem {
    return new FakeStatusBarItem();
  },
};

export interface FakeWorkspaceFolder {
  uri: Uri;
  name: string;
  index: number;
}

export const workspaceState: { folders: FakeWorkspaceFolder[]; config: Record<string, unknown>; documents: Map<string, string> } = {
  folders: [],
  config: {},
  documents: new Map(),
};

export const workspace = {
  get workspaceFolders(): FakeWorkspaceFolder[] | undefined {
    return workspaceState.folders.length ? workspaceState.folders : undefined;
  },
  getWorkspaceFolder(uri: Uri): FakeWorkspaceFolder | undefined {
    return workspaceState.folders.find((f) => uri.toString().startsWith(`${f.uri.toString()}/`));
  },
  asRelativePath(uri: Uri, _includeFolder?: boolean): string {
    const folder = workspace.getWorkspaceFolder(uri);
    return folder ? decodeURIComponent(uri.toString().slice(folder.uri.toString().length + 1)) : uri.fsPath;
  },
  getConfiguration(_section?: string): { get<T>(key: string): T | undefined } {
    return { get: <T>(key: string): T | undefined => workspaceState.config[key] as T | undefined };
  },
  onDidChangeConfiguration: new EventEmitter<unknown>().event,
  openTextDocument(uri: Uri): Promise<unknown> {
    const text = workspaceState.documents.get(uri.toString());
    if (text === undefined) {
      return Promise.reject(new Error(`no document ${uri.toString()}`));
    }
    const lines = text.split('\n');
    return Promise.resolve({
      lineCount: lines.length,
      lineAt: (line: number) => {
        const t = lines[line] ?? '';
        return { firstNonWhitespaceCharacterIndex: t.length - t.trimStart().length, range: new Range(line, 0, line, t.length) };
      },
    });
  },
};

export const extensions = {
  installed: new Set<string>(),
  getExtension(id: string): { id: string } | undefined {
    return extensions.installed.has(id) ? { id } : undefined;
  },
};

export class DebugAdapterServer {
  constructor(
    readonly port: number,
    readonly host?: string,
  ) {}
}

export interface FakeDescriptorFactory {
  createDebugAdapterDescriptor(session: { configuration: Record<string, unknown> }): unknown;
}

export const debugState: { started: unknown[]; answer: boolean; factories: Map<string, FakeDescriptorFactory> } = {
  started: [],
  answer: true,
  factories: new Map(),
};

const debugStart = new EventEmitter<{ id: string; configuration: { name: string } }>();
const debugEnd = new EventEmitter<{ id: string; configuration: { name: string } }>();

export const debug = {
  onDidStartDebugSession: debugStart.event,
  onDidTerminateDebugSession: debugEnd.event,
  registerDebugAdapterDescriptorFactory(type: string, factory: FakeDescriptorFactory): Disposable {
    debugState.factories.set(type, factory);
    return new Disposable(() => debugState.factories.delete(type));
  },
  startDebugging(_folder: unknown, config: { name: string }, _options?: unknown): Promise<boolean> {
    debugState.started.push(config);
    if (!debugState.answer) {
      return Promise.resolve(false);
    }
    const session = { id: `s${debugState.started.length}`, configuration: config };
    debugStart.fire(session);
    setImmediate(() => debugEnd.fire(session)); // the debugged test ends at once
    return Promise.resolve(true);
  },
};

export const commands = {
  executed: [] as { command: string; args: unknown[] }[],
  executeCommand(command: string, ...args: unknown[]): Promise<unknown> {
    commands.executed.push({ command, args });
    return Promise.resolve(undefined);
  },
  registerCommand(_command: string, _fn: (...args: unknown[]) => unknown): Disposable {
    return new Disposable();
  },
};

/** Forget what earlier tests recorded. */
export function resetStub(): void {
  controllers.length = 0;
  shown.length = 0;
  workspaceState.folders = [];
  workspaceState.config = {};
  workspaceState.documents.clear();
  extensions.installed.clear();
  debugState.started.length = 0;
  debugState.answer = true;
  debugState.factories.clear();
  commands.executed.length = 0;
}
