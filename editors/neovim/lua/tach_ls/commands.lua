--- The user commands: :TachRun, :TachRunFile, :TachRunAll, :TachRunAffected,
--- :TachCancel, :TachCoverageToggle, :TachOutput.
---
--- Runs report through the `tach/*` notifications (signs, lenses, the summary
--- message), so the commands only send the request and report errors.
local client = require("tach_ls.client")
local config = require("tach_ls.config")
local coverage = require("tach_ls.coverage")
local protocol = require("tach_ls.protocol")
local state = require("tach_ls.state")
local tree_mod = require("tach_ls.tree")
local util = require("tach_ls.util")

local M = {}

local function warn(message)
  vim.notify("tach-ls: " .. message, vim.log.levels.WARN)
end

--- The test (or class) under the cursor of the current window.
--- @return table|nil node, string|nil why not
function M.test_at_cursor()
  local bufnr = vim.api.nvim_get_current_buf()
  local tree = state.trees[util.buf_fname(bufnr)]
  if not tree then
    return nil, "no tests known in this buffer: is it a test file of a project tach-ls serves?"
  end
  local line = vim.api.nvim_win_get_cursor(0)[1] - 1
  local node = tree_mod.test_at(tree, line)
  if not node then
    return nil, string.format("no test at line %d; :TachRunFile runs the whole file", line + 1)
  end
  return node
end

function M.run()
  local node, why = M.test_at_cursor()
  if not node then
    return warn(why)
  end
  client.execute(0, protocol.CMD_RUN_TESTS, { { tests = { node.id } } })
end

function M.run_file()
  client.execute(0, protocol.CMD_RUN_TESTS, { { uri = vim.uri_from_bufnr(0) } })
end

function M.run_all()
  client.execute(0, protocol.CMD_RUN_ALL, {})
end

--- Run what changes to `paths` can affect; default: the files written since the
--- last :TachRunAffected, else the current file.
function M.run_affected(paths)
  if not paths or #paths == 0 then
    paths = vim.tbl_keys(state.saved)
    table.sort(paths)
  end
  if #paths == 0 then
    local fname = util.buf_fname(0)
    if fname == "" then
      return warn("no file to start from: give paths, :TachRunAffected {file} ...")
    end
    paths = { fname }
  end
  paths = vim.tbl_map(function(p)
    return vim.fs.normalize(vim.fn.fnamemodify(p, ":p"))
  end, paths)
  local sent = client.execute(0, protocol.CMD_RUN_AFFECTED, { { paths = paths } }, function(result)
    if type(result) == "table" and (result.total or 0) == 0 then
      vim.notify("tach-ls: no tests affected by " .. table.concat(paths, ", "), vim.log.levels.INFO)
    end
  end)
  if sent then
    state.saved = {}
  end
end

function M.cancel()
  client.execute(0, protocol.CMD_CANCEL, {}, function(result)
    if type(result) == "table" and type(result.cancelled) == "table" and #result.cancelled == 0 then
      vim.notify("tach-ls: no run to cancel", vim.log.levels.INFO)
    end
  end)
end

function M.coverage_toggle()
  local cfg = config.get()
  local on = coverage.toggle(vim.api.nvim_get_current_buf(), cfg)
  if on and not client.collecting(cfg) then
    client.update_settings(cfg, { coverage = true })
    vim.notify("tach-ls: coverage collection is on; run tests to see coverage", vim.log.levels.INFO)
  end
end

function M.output()
  local node, why = M.test_at_cursor()
  if not node then
    return warn(why)
  end
  local shown, not_shown = require("tach_ls.output").show(util.buf_fname(0), node.id)
  if not shown then
    warn(not_shown)
  end
end

M.COMMANDS = {
  TachRun = { M.run, "Run the test under the cursor" },
  TachRunFile = { M.run_file, "Run the tests of this file" },
  TachRunAll = { M.run_all, "Run every test of the project" },
  TachRunAffected = { M.run_affected, "Run the tests that changed files affect", nargs = "*", complete = "file" },
  TachCancel = { M.cancel, "Cancel the running tests" },
  TachCoverageToggle = { M.coverage_toggle, "Show or hide coverage in this buffer" },
  TachOutput = { M.output, "Show the last result and output of the test under the cursor" },
}

--- Define the user commands (again is harmless).
function M.create()
  for name, spec in pairs(M.COMMANDS) do
    local fn = spec[1]
    vim.api.nvim_create_user_command(name, function(opts)
      fn(opts.fargs)
    end, { desc = "tach-ls: " .. spec[2], nargs = spec.nargs or 0, complete = spec.complete })
  end
end

return M
