--- What the plugin knows from the server, per file: test trees, last results,
--- tests running, coverage, engine states. Filled by `handlers`, read by the views.
---
--- Files are keyed by normalized file name (`util.fname`), never by URI text:
--- the server and Neovim may percent-encode the same path differently.
local M = {}

function M.reset()
  M.trees = {} -- fname -> tree (see tree.lua), with .uri, .version, .errors
  M.results = {} -- fname -> nodeid -> tach/testResult params
  M.running = {} -- nodeid -> { run_id, fname }
  M.runs = {} -- run_id -> tach/runStarted params, while running
  M.last_run = nil -- the last tach/runFinished params
  M.status = {} -- folder fname -> tach/status params
  M.coverage = {} -- fname -> { covered = {lines}, missed = {lines} }
  M.saved = {} -- fname -> true: files written since the last :TachRunAffected
  M.coverage_seen = 0 -- tach/coverage notifications received (the health check reports it)
end

M.reset()

--- The results of the tests of one file: nodeid -> params.
function M.results_of(fname)
  local by_id = M.results[fname]
  if not by_id then
    by_id = {}
    M.results[fname] = by_id
  end
  return by_id
end

--- Every result of a test at or under `nodeid`, in the file `fname`.
function M.results_under(fname, nodeid)
  local tree_mod = require("tach_ls.tree")
  local out = {}
  for id, result in pairs(M.results[fname] or {}) do
    if tree_mod.selects(nodeid, id) then
      table.insert(out, result)
    end
  end
  table.sort(out, function(a, b)
    return a.nodeid < b.nodeid
  end)
  return out
end

return M
