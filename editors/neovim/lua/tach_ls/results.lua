--- Test results at each test: a sign and (optionally) virtual text with the status and duration.
---
--- Results are drawn from `state` at the lines of the current test tree, so
--- they follow edits: the server re-sends the tree as the buffer changes. A
--- parametrized function shows the worst of its cases. Failures themselves are
--- the server's diagnostics (`vim.diagnostic`), not drawn here.
local state = require("tach_ls.state")
local tree_mod = require("tach_ls.tree")
local util = require("tach_ls.util")

local M = {}

M.ns = vim.api.nvim_create_namespace("tach_ls.results")
M.PRIORITY = 20 -- above coverage signs, below nothing the user would miss

--- The four looks a line can have, by status.
local CATEGORY = {
  passed = "passed",
  xpassed = "passed",
  failed = "failed",
  error = "failed",
  crashed = "failed",
  timeout = "failed",
  skipped = "skipped",
  xfailed = "skipped",
  running = "running",
}

M.HL = {
  passed = "TachLsPassed",
  failed = "TachLsFailed",
  skipped = "TachLsSkipped",
  running = "TachLsRunning",
}

-- Worst first: the status a line shows when its cases differ.
local ORDER = { "running", "crashed", "timeout", "error", "failed", "xpassed", "passed", "xfailed", "skipped" }
local RANK = {}
for i, status in ipairs(ORDER) do
  RANK[status] = i
end

function M.category(status)
  return CATEGORY[status] or "failed"
end

--- What one line shows for its results (each { status, duration_ms }).
--- @return table { status, category, text }
function M.summarize(results)
  local worst, total = nil, 0
  local counts = {}
  for _, r in ipairs(results) do
    if worst == nil or (RANK[r.status] or 0) < (RANK[worst] or 0) then
      worst = r.status
    end
    counts[r.status] = (counts[r.status] or 0) + 1
    total = total + (type(r.duration_ms) == "number" and r.duration_ms or 0)
  end
  if worst == nil then
    return nil
  end
  local text
  if worst == "running" then
    text = "running…"
  elseif #results == 1 then
    text = worst .. " " .. util.duration(total)
  else
    local parts = {}
    for _, status in ipairs(ORDER) do
      if counts[status] then
        table.insert(parts, counts[status] .. " " .. status)
      end
    end
    text = table.concat(parts, ", ") .. " " .. util.duration(total)
  end
  return { status = worst, category = M.category(worst), text = text }
end

--- Line (0-based) -> list of results to show there, for the file `fname`.
function M.by_line(fname)
  local tree = state.trees[fname]
  if not tree then
    return {}
  end
  local lines = {}
  local function add(line, result)
    if line ~= nil then
      lines[line] = lines[line] or {}
      table.insert(lines[line], result)
    end
  end
  local shown = {}
  for nodeid, run in pairs(state.running) do
    if run.fname == fname then
      shown[nodeid] = true
      add(tree_mod.line_of(tree, nodeid), { status = "running", duration_ms = 0 })
    end
  end
  for nodeid, result in pairs(state.results[fname] or {}) do
    if not shown[nodeid] then
      add(tree_mod.line_of(tree, nodeid), result)
    end
  end
  return lines
end

--- Redraw the results of one buffer.
function M.render(bufnr, cfg)
  if not vim.api.nvim_buf_is_loaded(bufnr) then
    return
  end
  vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  local line_count = vim.api.nvim_buf_line_count(bufnr)
  for line, results in pairs(M.by_line(util.buf_fname(bufnr))) do
    local summary = M.summarize(results)
    if summary and line < line_count then
      local hl = M.HL[summary.category]
      local mark = { sign_text = cfg.signs[summary.category], sign_hl_group = hl, priority = M.PRIORITY }
      if cfg.virtual_text then
        mark.virt_text = { { summary.text, hl } }
        mark.virt_text_pos = "eol"
        mark.hl_mode = "combine"
      end
      vim.api.nvim_buf_set_extmark(bufnr, M.ns, line, 0, mark)
    end
  end
end

--- Redraw the buffer of `fname`, if one is loaded.
function M.render_file(fname, cfg)
  local bufnr = fname and util.buf_for(fname)
  if bufnr then
    M.render(bufnr, cfg)
  end
end

return M
