--- The `tach/*` notifications: one `on_<name>` function each, dispatched by name.
---
--- Each stores what it brings in `state`, redraws what depends on it, and
--- fires `User TachLs<Name>` (data: the params) for statuslines and scripts.
local config = require("tach_ls.config")
local coverage = require("tach_ls.coverage")
local lenses = require("tach_ls.lenses")
local protocol = require("tach_ls.protocol")
local results = require("tach_ls.results")
local state = require("tach_ls.state")
local tree_mod = require("tach_ls.tree")
local util = require("tach_ls.util")

local M = {}

local function refresh_lenses(fname)
  local bufnr = util.buf_for(fname)
  if bufnr and config.get().codelens then
    lenses.refresh(bufnr)
  end
end

function M.on_testsChanged(params)
  local fname = util.fname(params.uri)
  if not fname then
    return
  end
  local tree = tree_mod.index(params.tests)
  tree.uri, tree.version, tree.errors = params.uri, params.version, params.errors
  state.trees[fname] = tree
  results.render_file(fname, config.get())
  refresh_lenses(fname)
end

function M.on_runStarted(params)
  state.runs[params.run_id] = params
  local folder = util.fname(params.folder)
  for fname, tree in pairs(state.trees) do
    if folder == nil or util.is_under(fname, folder) then
      local ids = tree_mod.selected(tree, params.tests or {})
      for _, nodeid in ipairs(ids) do
        state.running[nodeid] = { run_id = params.run_id, fname = fname }
      end
      if #ids > 0 then
        results.render_file(fname, config.get())
      end
    end
  end
end

function M.on_testResult(params)
  local running = state.running[params.nodeid]
  local fname = util.fname(params.uri) or (running and running.fname)
  state.running[params.nodeid] = nil
  if not fname then
    return
  end
  state.results_of(fname)[params.nodeid] = params
  results.render_file(fname, config.get())
end

--- "3 passed, 1 failed in 45 ms": the summary of a `tach/runFinished`.
function M.summary(params)
  local parts = {}
  local counts = type(params.counts) == "table" and params.counts or {}
  local order = { "passed", "failed", "error", "crashed", "timeout", "skipped", "xfailed", "xpassed" }
  for _, status in ipairs(order) do
    if (counts[status] or 0) > 0 then
      table.insert(parts, counts[status] .. " " .. status)
    end
  end
  if #parts == 0 then
    parts = { (params.total or 0) .. " tests" }
  end
  local text = table.concat(parts, ", ") .. " in " .. util.duration(params.duration_ms)
  if params.cancelled then
    text = text .. " (cancelled)"
  end
  return text
end

function M.on_runFinished(params)
  state.runs[params.run_id] = nil
  state.last_run = params
  local touched = {}
  for nodeid, run in pairs(state.running) do
    if run.run_id == params.run_id then
      state.running[nodeid] = nil
      touched[run.fname] = true
    end
  end
  for fname in pairs(touched) do
    results.render_file(fname, config.get())
  end
  if config.get().codelens then
    lenses.refresh_all()
  end
  local failed = (params.failed or 0) + (params.errors or 0) > 0
  vim.notify("tach-ls: " .. M.summary(params), failed and vim.log.levels.WARN or vim.log.levels.INFO)
end

function M.on_coverage(params)
  coverage.render_file(coverage.store(params), config.get())
end

function M.on_status(params)
  local folder = util.fname(params.folder)
  if folder then
    state.status[folder] = params
  end
end

--- Handlers for the client configuration: protocol method -> lsp-handler.
function M.handlers()
  local out = {}
  for _, method in ipairs(protocol.NOTIFICATIONS) do
    local name = method:match("^tach/(.+)$")
    local event = "TachLs" .. name:sub(1, 1):upper() .. name:sub(2)
    out[method] = function(_, params, _)
      local ok, err = pcall(M["on_" .. name], params)
      if not ok then
        vim.notify(string.format("tach-ls: could not handle %s: %s", method, err), vim.log.levels.ERROR)
        return
      end
      vim.api.nvim_exec_autocmds("User", { pattern = event, data = params, modeline = false })
    end
  end
  return out
end

return M
