/**
 * Mirrors the plain tree of `tree.ts` into a `TestController`'s `TestItem`s.
 * Items are reused by id and a property is set only when it changed, so an
 * edit that moves a test moves its gutter icon without resetting the
 * Test Explorer (expanded folders, last results).
 */

import * as vscode from 'vscode';

import type { Range } from './protocol';
import type { ItemSpec, TreeModel } from './tree';

export function toRange(range: Range): vscode.Range {
  return new vscode.Range(range.start.line, range.start.character, range.end.line, range.end.character);
}

function sameRange(a: vscode.Range | undefined, b: Range | undefined): boolean {
  if (!a || !b) {
    return a === undefined && b === undefined;
  }
  return (
    a.start.line === b.start.line &&
    a.start.character === b.start.character &&
    a.end.line === b.end.line &&
    a.end.character === b.end.character
  );
}

function sameTags(a: readonly vscode.TestTag[], b: string[]): boolean {
  return a.length === b.length && a.every((tag, i) => tag.id === b[i]);
}

export class TestTree {
  private items = new Map<string, vscode.TestItem>();

  constructor(
    private readonly controller: vscode.TestController,
    readonly model: TreeModel,
  ) {}

  /** Bring the controller's items in line with the model. */
  sync(): void {
    const items = new Map<string, vscode.TestItem>();
    this.syncCollection(this.controller.items, this.model.topLevel(), items);
    this.items = items;
  }

  /** The TestItem of a spec id, if it is in the tree. */
  item(id: string): vscode.TestItem | undefined {
    return this.items.get(id);
  }

  /** The spec behind a TestItem. */
  spec(item: vscode.TestItem): ItemSpec | undefined {
    return this.model.get(item.id);
  }

  private syncCollection(collection: vscode.TestItemCollection, specs: ItemSpec[], index: Map<string, vscode.TestItem>): void {
    const items: vscode.TestItem[] = [];
    let changed = collection.size !== specs.length;
    for (const spec of specs) {
      const existing = collection.get(spec.id);
      const item = existing && existing.uri?.toString() === spec.uri ? existing : this.create(spec);
      if (item !== existing) {
        changed = true;
      }
      this.update(item, spec);
      this.syncCollection(item.children, spec.children, index);
      index.set(spec.id, item);
      items.push(item);
    }
    if (changed) {
      collection.replace(items);
    }
  }

  private create(spec: ItemSpec): vscode.TestItem {
    return this.controller.createTestItem(spec.id, spec.label, vscode.Uri.parse(spec.uri));
  }

  private update(item: vscode.TestItem, spec: ItemSpec): void {
    if (item.label !== spec.label) {
      item.label = spec.label;
    }
    if (item.description !== spec.description) {
      item.description = spec.description;
    }
    if (item.sortText !== spec.sortText) {
      item.sortText = spec.sortText;
    }
    if (!sameRange(item.range, spec.range)) {
      item.range = spec.range ? toRange(spec.range) : undefined;
    }
    if (item.error !== spec.error) {
      item.error = spec.error;
    }
    if (!sameTags(item.tags, spec.tags)) {
      item.tags = spec.tags.map((t) => new vscode.TestTag(t));
    }
  }
}
