--- :TachOutput: the last result of a test (status, message, captured output) in a split.
local state = require("tach_ls.state")
local util = require("tach_ls.util")

local M = {}

M.BUFNAME = "tach-ls://output"

--- The lines :TachOutput shows for `results` (tach/testResult params, in order).
function M.lines(results)
  local out = {}
  for i, r in ipairs(results) do
    if i > 1 then
      table.insert(out, "")
    end
    table.insert(out, string.format("%s  %s  %s", r.nodeid, r.status, util.duration(r.duration_ms)))
    if type(r.message) == "string" and r.message ~= "" then
      vim.list_extend(out, vim.split(r.message, "\n", { plain = true, trimempty = true }))
    end
    if type(r.output) == "string" and r.output ~= "" then
      table.insert(out, "--- captured output ---")
      vim.list_extend(out, vim.split(r.output, "\n", { plain = true, trimempty = true }))
    else
      table.insert(out, "(no captured output)")
    end
  end
  return out
end

local function output_buffer()
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_get_name(bufnr) == M.BUFNAME then
      return bufnr
    end
  end
  local bufnr = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_name(bufnr, M.BUFNAME)
  vim.bo[bufnr].bufhidden = "hide"
  vim.bo[bufnr].filetype = "tach_ls_output"
  return bufnr
end

--- Show the results of `nodeid` (and its cases) from the file `fname` in a split below.
--- @return integer|nil bufnr, string|nil why not
function M.show(fname, nodeid)
  local results = state.results_under(fname, nodeid)
  if #results == 0 then
    return nil, string.format("no result for %s yet: run it with :TachRun", nodeid)
  end
  local bufnr = output_buffer()
  vim.bo[bufnr].modifiable = true
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, M.lines(results))
  vim.bo[bufnr].modifiable = false
  local win = vim.fn.bufwinid(bufnr)
  if win == -1 then
    vim.cmd("botright split")
    win = vim.api.nvim_get_current_win()
    vim.api.nvim_win_set_buf(win, bufnr)
    vim.api.nvim_win_set_height(win, math.min(15, math.max(3, #M.lines(results))))
  end
  vim.api.nvim_set_current_win(win)
  return bufnr
end

return M
