--- The test tree of one file (`tach/testsChanged`), and questions about it.
---
--- Pure: a tree is plain data, so the unit tests build one from a literal.
local M = {}

local LEAF_KINDS = { ["function"] = true, method = true, case = true }

--- Index the `tests` list of a `tach/testsChanged` notification.
--- @return table tree { tests, by_id, has_children }
function M.index(tests)
  local tree = { tests = tests or {}, by_id = {}, has_children = {} }
  for _, node in ipairs(tree.tests) do
    tree.by_id[node.id] = node
    if node.parent and node.parent ~= vim.NIL then
      tree.has_children[node.parent] = true
    end
  end
  return tree
end

--- The tests that run (functions without cases, methods, cases), in file order.
function M.leaves(tree)
  local out = {}
  for _, node in ipairs(tree.tests) do
    if LEAF_KINDS[node.kind] and not tree.has_children[node.id] then
      table.insert(out, node)
    end
  end
  return out
end

local function span(node)
  return node.range["end"].line - node.range.start.line
end

-- Among nodes with the same range a function wins over its cases: the
-- cursor on a parametrized test means all of its cases.
local PREFERENCE = { ["function"] = 3, method = 3, class = 2, case = 1 }

--- The innermost test or class whose definition contains `line` (0-based), or nil.
function M.test_at(tree, line)
  local best
  for _, node in ipairs(tree.tests) do
    local r = node.range
    if node.kind ~= "module" and r.start.line <= line and line <= r["end"].line then
      if
        best == nil
        or span(node) < span(best)
        or (span(node) == span(best) and (PREFERENCE[node.kind] or 0) > (PREFERENCE[best.kind] or 0))
      then
        best = node
      end
    end
  end
  return best
end

--- The parent of a node id: `a.py::T::t[1]` -> `a.py::T::t` -> `a.py::T` -> `a.py` -> nil.
function M.parent_id(nodeid)
  local base = nodeid:match("^(.-)%[.*%]$")
  if base then
    return base
  end
  return nodeid:match("^(.*)::[^:]+$")
end

--- Where the result of `nodeid` shows: its own def line, else its nearest known
--- function or class (a test the static index did not see, like an inherited
--- one). nil when only the module is known: a result of a test that no longer
--- exists is not shown.
function M.line_of(tree, nodeid)
  local id = nodeid
  while id do
    local node = tree.by_id[id]
    if node then
      if node.kind == "module" then
        return nil
      end
      return node.selection_line
    end
    id = M.parent_id(id)
  end
  return nil
end

--- Does a run target (a node id, a file or a directory, relative to the root) select `nodeid`?
function M.selects(target, nodeid)
  if target == nodeid then
    return true
  end
  local n = #target
  local next_chars = nodeid:sub(n + 1, n + 2)
  if nodeid:sub(1, n) ~= target then
    return false
  end
  return next_chars == "::" or next_chars:sub(1, 1) == "[" or next_chars:sub(1, 1) == "/" or target:sub(-1) == "/"
end

--- The leaves of `tree` that a run of `targets` covers (every leaf when `targets` is empty).
function M.selected(tree, targets)
  local out = {}
  for _, node in ipairs(M.leaves(tree)) do
    local hit = #targets == 0
    for _, target in ipairs(targets) do
      if hit then
        break
      end
      hit = M.selects(target, node.id)
    end
    if hit then
      table.insert(out, node.id)
    end
  end
  return out
end

--- The node ids under `nodeid` (itself included), in file order.
function M.descendants(tree, nodeid)
  local out = {}
  for _, node in ipairs(tree.tests) do
    if M.selects(nodeid, node.id) then
      table.insert(out, node.id)
    end
  end
  return out
end

return M
