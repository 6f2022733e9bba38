--- Line coverage (`tach/coverage`) as signs in the sign column, toggled per buffer.
---
--- The server collects coverage when the `coverage` setting is on; a buffer
--- shows it when its toggle is on (`vim.b.tach_ls_coverage`, default: the
--- `coverage` option). Turning a buffer on while collection is off turns
--- collection on for the session, so the next run brings coverage.
local state = require("tach_ls.state")
local util = require("tach_ls.util")

local M = {}

M.ns = vim.api.nvim_create_namespace("tach_ls.coverage")
M.PRIORITY = 5 -- below diagnostics and results: coverage is background information
M.HL = { covered = "TachLsCovered", missed = "TachLsMissed" }

--- Is coverage shown in this buffer?
function M.enabled(bufnr, cfg)
  local value = vim.b[bufnr].tach_ls_coverage
  if value == nil then
    return cfg.coverage
  end
  return value
end

--- Store one `tach/coverage` notification (replacing what the file had).
function M.store(params)
  local fname = util.fname(params.uri)
  if not fname then
    return nil
  end
  state.coverage[fname] = { covered = params.covered or {}, missed = params.missed or {} }
  state.coverage_seen = state.coverage_seen + 1
  return fname
end

--- Redraw the coverage signs of one buffer.
function M.render(bufnr, cfg)
  if not vim.api.nvim_buf_is_loaded(bufnr) then
    return
  end
  vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  local data = state.coverage[util.buf_fname(bufnr)]
  if not data or not M.enabled(bufnr, cfg) then
    return
  end
  local line_count = vim.api.nvim_buf_line_count(bufnr)
  for _, kind in ipairs({ "covered", "missed" }) do
    for _, line in ipairs(data[kind]) do
      if type(line) == "number" and line >= 0 and line < line_count then
        vim.api.nvim_buf_set_extmark(bufnr, M.ns, line, 0, {
          sign_text = cfg.coverage_signs[kind],
          sign_hl_group = M.HL[kind],
          priority = M.PRIORITY,
        })
      end
    end
  end
end

function M.render_file(fname, cfg)
  local bufnr = fname and util.buf_for(fname)
  if bufnr then
    M.render(bufnr, cfg)
  end
end

--- The lines of a buffer with a coverage sign: { covered = {...}, missed = {...} } (0-based).
function M.signs(bufnr)
  local out = { covered = {}, missed = {} }
  for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(bufnr, M.ns, 0, -1, { details = true })) do
    local kind = mark[4].sign_hl_group == M.HL.covered and "covered" or "missed"
    table.insert(out[kind], mark[2])
  end
  return out
end

--- Flip this buffer's coverage display; returns the new value.
function M.toggle(bufnr, cfg)
  local on = not M.enabled(bufnr, cfg)
  vim.b[bufnr].tach_ls_coverage = on
  M.render(bufnr, cfg)
  return on
end

return M
