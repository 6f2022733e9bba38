/** Run planning: a Test Explorer request -> server targets per root. */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { planRun } from '../src/common/plan';
import { TreeModel } from '../src/common/tree';
import { fileTree, id, recorded, ROOT } from './helpers';

function model(): TreeModel {
  const m = new TreeModel();
  m.update(recorded().testsChanged);
  m.update(fileTree(ROOT, 'tests/test_other.py', ['test_o']));
  return m;
}

describe('planRun', () => {
  test('nothing included: the whole suite of every root', () => {
    const [plan, ...rest] = planRun(model(), undefined);
    assert.equal(rest.length, 0);
    assert.equal(plan?.all, true);
    assert.deepEqual(plan?.targets, []);
    assert.equal(plan?.leaves.length, 6);
  });

  test('an item runs by its node id; a folder by its path', () => {
    const [plan] = planRun(model(), [id('tests/test_calc.py::test_div'), id('tests')]);
    assert.deepEqual(plan?.targets, ['tests'], 'test_div is inside tests/: not sent twice');
    const [one] = planRun(model(), [id('tests/test_calc.py::test_div')]);
    assert.deepEqual(one?.targets, ['tests/test_calc.py::test_div']);
    assert.deepEqual(one?.leaves.map((l) => l.label), ['[1-1-1]', '[6-3-2]']);
  });

  test('an exclusion splits its ancestors into the remaining siblings', () => {
    const [plan] = planRun(model(), [id('tests/test_calc.py')], [id('tests/test_calc.py::test_div[6-3-2]'), id('tests/test_calc.py::TestDiv')]);
    assert.deepEqual(plan?.targets.sort(), [
      'tests/test_calc.py::test_add',
      'tests/test_calc.py::test_add_wrong',
      'tests/test_calc.py::test_div[1-1-1]',
    ]);
  });

  test('two roots: one plan each', () => {
    const m = model();
    m.update(fileTree('file:///other', 'test_z.py', ['test_z']));
    const plans = planRun(m, [id('tests/test_calc.py::test_add'), 'file:///other|test_z.py::test_z']);
    assert.deepEqual(
      plans.map((p) => [p.root, p.targets]),
      [
        [ROOT, ['tests/test_calc.py::test_add']],
        ['file:///other', ['test_z.py::test_z']],
      ],
    );
  });

  test('unknown ids are ignored', () => {
    assert.deepEqual(planRun(model(), ['nope']), []);
  });
});
