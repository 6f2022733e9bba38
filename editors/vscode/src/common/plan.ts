/**
 * A Test Explorer request (included and excluded items) -> what to ask the
 * server, per workspace root: the whole suite, or the fewest node ids that
 * cover the included tests without the excluded ones. Pure.
 */

import type { NodeId } from './protocol';
import type { ItemSpec, TreeModel } from './tree';

export interface RunPlan {
  root: string;
  /** Run the root's whole suite (`tach.runAll`). */
  all: boolean;
  /** Targets for `tach.runTests` (node ids, or folder/file paths). */
  targets: NodeId[];
  /** Every test the run covers: enqueued at once. */
  leaves: ItemSpec[];
}

/** The targets under `spec` that avoid every excluded item. */
function targetsAvoiding(model: TreeModel, spec: ItemSpec, excluded: ReadonlySet<string>): ItemSpec[] {
  if (excluded.has(spec.id)) {
    return [];
  }
  if (!hasExcludedBelow(spec, excluded)) {
    return [spec];
  }
  return spec.children.flatMap((child) => targetsAvoiding(model, child, excluded));
}

function hasExcludedBelow(spec: ItemSpec, excluded: ReadonlySet<string>): boolean {
  return spec.children.some((c) => excluded.has(c.id) || hasExcludedBelow(c, excluded));
}

function coveredByAncestor(model: TreeModel, spec: ItemSpec, chosen: ReadonlySet<string>): boolean {
  for (let p = model.parent(spec); p; p = model.parent(p)) {
    if (chosen.has(p.id)) {
      return true;
    }
  }
  return false;
}

export function planRun(model: TreeModel, include: readonly string[] | undefined, exclude: readonly string[] = []): RunPlan[] {
  const excluded = new Set(exclude);
  const included = (include ?? model.allRoots().map((r) => r.id))
    .map((id) => model.get(id))
    .filter((s): s is ItemSpec => s !== undefined);
  const chosenIds = new Set(included.map((s) => s.id));
  const targets = included
    .filter((s) => !coveredByAncestor(model, s, chosenIds))
    .flatMap((s) => targetsAvoiding(model, s, excluded));
  const byRoot = new Map<string, RunPlan>();
  for (const spec of targets) {
    let plan = byRoot.get(spec.root);
    if (!plan) {
      plan = { root: spec.root, all: false, targets: [], leaves: [] };
      byRoot.set(spec.root, plan);
    }
    if (spec.kind === 'root') {
      plan.all = true;
    } else {
      plan.targets.push(spec.nodeid);
    }
    plan.leaves.push(...model.leaves(spec));
  }
  for (const plan of byRoot.values()) {
    if (plan.all) {
      plan.targets = [];
    }
  }
  return [...byRoot.values()];
}
