/**
 * The test tree as plain data, built from `tach/testsChanged` notifications:
 * workspace roots (only when there are several), folders, files, classes,
 * functions and parametrized cases. Pure (no `vscode`), so tests build trees
 * from notifications directly; `testTree.ts` mirrors it into `TestItem`s.
 *
 * Ids are `<root URI>|<node id>`: unique across workspace folders, stable
 * while a file is edited. A root's node id is `''` (its whole suite), a
 * folder's is its path relative to the root (pytest takes folders as targets).
 */

import type { IndexError, LineNo, NodeId, NodeKind, Range, TestNode, TestsChanged } from './protocol';

export type ItemKind = 'root' | 'folder' | NodeKind;

export interface ItemSpec {
  /** Unique in the controller: `<root>|<nodeid>`. */
  id: string;
  /** What the server runs for this item ('' for a whole root). */
  nodeid: NodeId;
  /** URI of the directory node ids are relative to (pytest's rootdir). */
  root: string;
  kind: ItemKind;
  label: string;
  /** The file (or folder) URI. */
  uri: string;
  /** From the `def`/`class` line to the end of the definition: gutter icons go on its first line. */
  range?: Range;
  description?: string;
  /** pytest markers, shown as test tags (filter with `@name`). */
  tags: string[];
  /** Why a file's tests could not all be found (syntax error...). */
  error?: string;
  /** Source order inside a file. */
  sortText?: string;
  children: ItemSpec[];
}

/** Where a file sits: the root URI and its path below it ('a/b/test_x.py'). */
export interface FilePlace {
  root: string;
  path: string;
}

/** Fallback for a file the server sent no module node for (only errors): place it by workspace folder. */
export type PlaceResolver = (uri: string) => FilePlace | undefined;

interface FileEntry {
  place: FilePlace;
  module: ItemSpec;
}

export const ID_SEP = '|';

export function itemId(root: string, nodeid: NodeId): string {
  return `${root}${ID_SEP}${nodeid}`;
}

/** The root of a file from its URI and its node id path, comparing decoded segments from the end. */
export function placeOf(uri: string, modulePath: string): FilePlace | undefined {
  const uriParts = uri.split('/');
  const pathParts = modulePath.split('/');
  if (pathParts.length >= uriParts.length) {
    return undefined;
  }
  for (let i = 1; i <= pathParts.length; i++) {
    if (safeDecode(uriParts[uriParts.length - i] ?? '') !== pathParts[pathParts.length - i]) {
      return undefined;
    }
  }
  return { root: uriParts.slice(0, uriParts.length - pathParts.length).join('/'), path: modulePath };
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function basename(path: string): string {
  const parts = path.split('/');
  return parts[parts.length - 1] ?? path;
}

function gutterRange(node: TestNode): Range {
  const start = node.selection_line;
  const startChar = node.range.start.line === start ? node.range.start.character : 0;
  const end = node.range.end.line >= start ? node.range.end : { line: start, character: 0 };
  return { start: { line: start, character: startChar }, end };
}

function sortKey(line: LineNo, label: string): string {
  return `${String(line).padStart(8, '0')} ${label}`;
}

function describe(node: TestNode): string | undefined {
  const parts: string[] = [];
  if (node.deselected) {
    parts.push('deselected');
  }
  if (node.dynamic) {
    parts.push('dynamic');
  }
  return parts.length ? parts.join(', ') : undefined;
}

function errorText(errors: IndexError[] | undefined): string | undefined {
  if (!errors || errors.length === 0) {
    return undefined;
  }
  return errors.map((e) => (e.line !== null && e.line !== undefined ? `line ${e.line + 1}: ${e.message}` : e.message)).join('\n');
}

/** The module item (with everything below it) of one `tach/testsChanged`. */
export function moduleSpec(msg: TestsChanged, place: FilePlace): ItemSpec {
  const moduleNode = msg.tests.find((n) => n.kind === 'module');
  const moduleId = moduleNode?.id ?? place.path;
  const module: ItemSpec = {
    id: itemId(place.root, moduleId),
    nodeid: moduleId,
    root: place.root,
    kind: 'module',
    label: basename(place.path),
    uri: msg.uri,
    tags: moduleNode?.markers ?? [],
    error: errorText(msg.errors),
    children: [],
  };
  const byNode = new Map<NodeId, ItemSpec>([[moduleId, module]]);
  for (const node of msg.tests) {
    if (node.kind === 'module') {
      continue;
    }
    byNode.set(node.id, {
      id: itemId(place.root, node.id),
      nodeid: node.id,
      root: place.root,
      kind: node.kind,
      label: node.label,
      uri: node.uri || msg.uri,
      range: gutterRange(node),
      description: describe(node),
      tags: node.markers ?? [],
      sortText: sortKey(node.selection_line, node.label),
      children: [],
    });
  }
  for (const node of msg.tests) {
    if (node.kind === 'module') {
      continue;
    }
    const spec = byNode.get(node.id);
    const parent = (node.parent !== null && byNode.get(node.parent)) || module;
    if (spec && parent !== spec) {
      parent.children.push(spec);
    }
  }
  return module;
}

function visit(spec: ItemSpec, fn: (s: ItemSpec, parent: ItemSpec | undefined) => void, parent?: ItemSpec): void {
  fn(spec, parent);
  for (const child of spec.children) {
    visit(child, fn, spec);
  }
}

/** What the Test Explorer should show: every file's tree, under folders, under roots when several. */
export class TreeModel {
  private readonly files = new Map<string, FileEntry>();
  private byId = new Map<string, ItemSpec>();
  private parents = new Map<string, ItemSpec>();
  private roots: ItemSpec[] = [];

  constructor(private readonly resolvePlace: PlaceResolver = () => undefined) {}

  /** Apply one notification; true when the tree changed shape or content. */
  update(msg: TestsChanged): boolean {
    const hasErrors = (msg.errors?.length ?? 0) > 0;
    if (msg.tests.length === 0 && !hasErrors) {
      const existed = this.files.delete(msg.uri);
      if (existed) {
        this.rebuild();
      }
      return existed;
    }
    const place = this.placeFor(msg);
    if (!place) {
      return false;
    }
    this.files.set(msg.uri, { place, module: moduleSpec(msg, place) });
    this.rebuild();
    return true;
  }

  /** Forget every file under a root (a workspace folder was closed or the server restarted). */
  clear(root?: string): void {
    for (const [uri, entry] of this.files) {
      if (root === undefined || entry.place.root === root) {
        this.files.delete(uri);
      }
    }
    this.rebuild();
  }

  private placeFor(msg: TestsChanged): FilePlace | undefined {
    const moduleNode = msg.tests.find((n) => n.kind === 'module');
    const path = moduleNode?.id ?? msg.tests[0]?.id.split('::')[0];
    if (path) {
      return placeOf(msg.uri, path) ?? this.resolvePlace(msg.uri);
    }
    return this.files.get(msg.uri)?.place ?? this.resolvePlace(msg.uri);
  }

  /** The top-level items: roots when there are several, else the one root's folders and files. */
  topLevel(): ItemSpec[] {
    if (this.roots.length === 1) {
      return this.roots[0]?.children ?? [];
    }
    return this.roots;
  }

  get(id: string): ItemSpec | undefined {
    return this.byId.get(id);
  }

  parent(spec: ItemSpec): ItemSpec | undefined {
    return this.parents.get(spec.id);
  }

  find(root: string, nodeid: NodeId): ItemSpec | undefined {
    return this.byId.get(itemId(root, nodeid));
  }

  /** The runnable tests (functions without cases, and cases) at or below an item. */
  leaves(spec: ItemSpec): ItemSpec[] {
    const out: ItemSpec[] = [];
    visit(spec, (s) => {
      if (s.children.length === 0 && (s.kind === 'function' || s.kind === 'method' || s.kind === 'case')) {
        out.push(s);
      }
    });
    return out;
  }

  allRoots(): ItemSpec[] {
    return this.roots;
  }

  private rebuild(): void {
    const roots = new Map<string, ItemSpec>();
    for (const { place, module } of this.files.values()) {
      let root = roots.get(place.root);
      if (!root) {
        root = {
          id: itemId(place.root, ''),
          nodeid: '',
          root: place.root,
          kind: 'root',
          label: safeDecode(basename(place.root)) || place.root,
          uri: place.root,
          tags: [],
          children: [],
        };
        roots.set(place.root, root);
      }
      let parent = root;
      const dirs = place.path.split('/').slice(0, -1);
      for (let i = 0; i < dirs.length; i++) {
        const rel = dirs.slice(0, i + 1).join('/');
        const id = itemId(place.root, rel);
        let folder = parent.children.find((c) => c.id === id);
        if (!folder) {
          folder = {
            id,
            nodeid: rel,
            root: place.root,
            kind: 'folder',
            label: dirs[i] ?? rel,
            uri: `${place.root}/${rel.split('/').map(encodeURIComponent).join('/')}`,
            tags: [],
            children: [],
          };
          parent.children.push(folder);
        }
        parent = folder;
      }
      parent.children.push(module);
    }
    this.roots = [...roots.values()];
    const byId = new Map<string, ItemSpec>();
    const parents = new Map<string, ItemSpec>();
    for (const root of this.roots) {
      visit(root, (s, parent) => {
        byId.set(s.id, s);
        if (parent) {
          parents.set(s.id, parent);
        }
      });
    }
    this.byId = byId;
    this.parents = parents;
  }
}
