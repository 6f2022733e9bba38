/** Tree building from `tach/testsChanged`: the pure model and its mirror in TestItems. */

import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import type * as vscode from 'vscode';

import { TestTree } from '../src/common/testTree';
import { TreeModel, placeOf } from '../src/common/tree';
import { fileTree, id, recorded, ROOT } from './helpers';
import * as stub from './stub/vscode';

function newTree(model = new TreeModel()): { tree: TestTree; controller: stub.FakeTestController } {
  const controller = stub.tests.createTestController('t', 't');
  return { tree: new TestTree(controller as unknown as vscode.TestController, model), controller };
}

describe('placeOf', () => {
  test('finds the root by comparing decoded path segments from the end', () => {
    assert.deepEqual(placeOf(`${ROOT}/tests/test_calc.py`, 'tests/test_calc.py'), { root: ROOT, path: 'tests/test_calc.py' });
  });
  test('refuses a node id path that is not the end of the URI', () => {
    assert.equal(placeOf(`${ROOT}/tests/test_calc.py`, 'other/test_calc.py'), undefined);
  });
});

describe('TreeModel', () => {
  test('the recorded lsp_basic tree: folder, file, class, functions, cases', () => {
    const model = new TreeModel();
    assert.equal(model.update(recorded().testsChanged), true);
    const [folder] = model.topLevel();
    assert.equal(folder?.kind, 'folder');
    assert.equal(folder?.id, id('tests'));
    assert.equal(folder?.uri, `${ROOT}/tests`);
    const file = folder?.children[0];
    assert.equal(file?.kind, 'module');
    assert.equal(file?.label, 'test_calc.py');
    assert.equal(file?.range, undefined, 'no gutter icon on line 1 for a whole file');
    assert.deepEqual(
      file?.children.map((c) => [c.label, c.kind]),
      [
        ['TestDiv', 'class'],
        ['test_add', 'function'],
        ['test_add_wrong', 'function'],
        ['test_div', 'function'],
      ],
    );
    const div = model.find(ROOT, 'tests/test_calc.py::test_div');
    assert.deepEqual(
      div?.children.map((c) => c.label),
      ['[1-1-1]', '[6-3-2]'],
    );
    assert.deepEqual(model.find(ROOT, 'tests/test_calc.py::TestDiv')?.children.map((c) => c.nodeid), ['tests/test_calc.py::TestDiv::test_by_zero']);
  });

  test('gutter ranges start at the def line, not at decorators', () => {
    const model = new TreeModel();
    model.update(recorded().testsChanged);
    const div = model.find(ROOT, 'tests/test_calc.py::test_div');
    assert.equal(div?.range?.start.line, 15, '`def test_div` is 0-based line 15; its decorator is line 14');
    assert.equal(model.find(ROOT, 'tests/test_calc.py::test_div[6-3-2]')?.range?.start.line, 15);
    assert.equal(model.find(ROOT, 'tests/test_calc.py::test_add')?.range?.start.line, 5);
  });

  test('source order inside a file, via sortText', () => {
    const model = new TreeModel();
    model.update(recorded().testsChanged);
    const file = model.find(ROOT, 'tests/test_calc.py');
    const sorted = [...(file?.children ?? [])].sort((a, b) => (a.sortText ?? '').localeCompare(b.sortText ?? ''));
    assert.deepEqual(
      sorted.map((c) => c.label),
      ['test_add', 'test_add_wrong', 'test_div', 'TestDiv'],
    );
  });

  test('a notification replaces the file: removed tests go, an empty file and its folders go', () => {
    const model = new TreeModel();
    model.update(fileTree(ROOT, 'tests/unit/test_a.py', ['test_one', 'test_two']));
    model.update(fileTree(ROOT, 'tests/test_b.py', ['test_b']));
    model.update(fileTree(ROOT, 'tests/unit/test_a.py', ['test_two']));
    assert.equal(model.find(ROOT, 'tests/unit/test_a.py::test_one'), undefined);
    assert.ok(model.find(ROOT, 'tests/unit/test_a.py::test_two'));
    assert.equal(model.update({ uri: `${ROOT}/tests/unit/test_a.py`, version: 3, tests: [], errors: [] }), true);
    assert.equal(model.find(ROOT, 'tests/unit'), undefined, 'a folder without test files disappears');
    assert.ok(model.find(ROOT, 'tests/test_b.py::test_b'));
  });

  test('index errors show on the file, even when the file has no tests left', () => {
    const model = new TreeModel();
    model.update(fileTree(ROOT, 'tests/test_a.py', ['test_one']));
    model.update({ uri: `${ROOT}/tests/test_a.py`, version: 2, tests: [], errors: [{ message: 'invalid syntax', line: 4, kind: 'syntax' }] });
    assert.equal(model.find(ROOT, 'tests/test_a.py')?.error, 'line 5: invalid syntax');
  });

  test('several workspace roots: one top-level item per root', () => {
    const model = new TreeModel();
    model.update(fileTree('file:///a', 'test_x.py', ['test_1']));
    assert.deepEqual(model.topLevel().map((s) => s.id), ['file:///a|test_x.py'], 'one root is not shown');
    model.update(fileTree('file:///b', 'test_x.py', ['test_1']));
    assert.deepEqual(model.topLevel().map((s) => [s.kind, s.label]), [
      ['root', 'a'],
      ['root', 'b'],
    ]);
    assert.notEqual(model.find('file:///a', 'test_x.py::test_1')?.id, model.find('file:///b', 'test_x.py::test_1')?.id);
  });

  test('markers become tags, deselected and dynamic tests say so', () => {
    const msg = fileTree(ROOT, 'test_m.py', ['test_slow']);
    const node = msg.tests[1];
    assert.ok(node);
    node.markers = ['slow'];
    node.deselected = true;
    node.dynamic = true;
    const model = new TreeModel();
    model.update(msg);
    const spec = model.find(ROOT, 'test_m.py::test_slow');
    assert.deepEqual(spec?.tags, ['slow']);
    assert.equal(spec?.description, 'deselected, dynamic');
  });

  test('leaves: cases of a parametrized function, not the function', () => {
    const model = new TreeModel();
    model.update(recorded().testsChanged);
    const file = model.find(ROOT, 'tests/test_calc.py');
    assert.ok(file);
    assert.deepEqual(model.leaves(file).map((s) => s.nodeid).sort(), [
      'tests/test_calc.py::TestDiv::test_by_zero',
      'tests/test_calc.py::test_add',
      'tests/test_calc.py::test_add_wrong',
      'tests/test_calc.py::test_div[1-1-1]',
      'tests/test_calc.py::test_div[6-3-2]',
    ]);
  });
});

describe('TestTree (TestItems)', () => {
  beforeEach(() => stub.resetStub());

  test('items with URIs and ranges for gutter icons, found by id', () => {
    const { tree, controller } = newTree();
    tree.model.update(recorded().testsChanged);
    tree.sync();
    assert.deepEqual(controller.items.sortedIds(), [id('tests')]);
    const add = tree.item(id('tests/test_calc.py::test_add')) as unknown as stub.FakeTestItem;
    assert.equal(add.uri?.toString(), `${ROOT}/tests/test_calc.py`);
    assert.deepEqual([add.range?.start.line, add.range?.end.line], [5, 6]);
    assert.equal(controller.all().size, 9, 'folder, file, class, 3 functions, 1 method, 2 cases');
  });

  test('an edit moves a test: the same item is updated, siblings are untouched', () => {
    const { tree, controller } = newTree();
    const msg = fileTree(ROOT, 'test_a.py', ['test_one', 'test_two']);
    tree.model.update(msg);
    tree.sync();
    const one = tree.item(id('test_a.py::test_one')) as unknown as stub.FakeTestItem;
    const two = tree.item(id('test_a.py::test_two')) as unknown as stub.FakeTestItem;
    const fileItem = controller.items.get(id('test_a.py'));
    const replacesBefore = fileItem?.children.replaceCalls;
    const [setsOne, setsTwo] = [one.sets, two.sets];
    const moved = fileTree(ROOT, 'test_a.py', ['test_one', 'test_two']);
    const node = moved.tests[2];
    assert.ok(node);
    node.selection_line = 10;
    node.range = { start: { line: 10, character: 0 }, end: { line: 11, character: 4 } };
    tree.model.update(moved);
    tree.sync();
    assert.equal(tree.item(id('test_a.py::test_two')), two, 'same item object');
    assert.equal(two.range?.start.line, 10);
    assert.ok(two.sets > setsTwo);
    assert.equal(one.sets, setsOne, 'an unchanged test is not touched');
    assert.equal(fileItem?.children.replaceCalls, replacesBefore, 'same children: no replace');
  });

  test('a removed test leaves the collection', () => {
    const { tree, controller } = newTree();
    tree.model.update(fileTree(ROOT, 'test_a.py', ['test_one', 'test_two']));
    tree.sync();
    tree.model.update(fileTree(ROOT, 'test_a.py', ['test_two']));
    tree.sync();
    assert.deepEqual([...(controller.items.get(id('test_a.py'))?.children ?? [])].map(([k]) => k), [id('test_a.py::test_two')]);
    assert.equal(tree.item(id('test_a.py::test_one')), undefined);
  });

  test('markers are TestTags', () => {
    const { tree } = newTree();
    const msg = fileTree(ROOT, 'test_m.py', ['test_slow']);
    const node = msg.tests[1];
    assert.ok(node);
    node.markers = ['slow', 'db'];
    tree.model.update(msg);
    tree.sync();
    const item = tree.item(id('test_m.py::test_slow')) as unknown as stub.FakeTestItem;
    assert.deepEqual(item.tags.map((t) => t.id), ['slow', 'db']);
  });
});
