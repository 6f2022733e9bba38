-- Shared by the end-to-end drivers: the report, bounded waits, what the editor shows.
--
-- A driver does `local H = dofile(<this file>)`, then `H.run(function() ... end)`:
-- the scenario runs once Neovim has started; whatever happens, the report is
-- written to $TACH_E2E_REPORT and Neovim quits (exit code 1 after an error).
-- Environment: TACH_E2E_PLUGIN (editors/neovim), TACH_E2E_ROOT (the project
-- copy), TACH_E2E_PYTHON (the server's Python), TACH_E2E_WAIT_MS (each wait's bound).
local H = {}

H.root = assert(vim.env.TACH_E2E_ROOT, "TACH_E2E_ROOT is not set")
H.python = assert(vim.env.TACH_E2E_PYTHON, "TACH_E2E_PYTHON is not set")
H.WAIT_MS = tonumber(vim.env.TACH_E2E_WAIT_MS or "") or 30000

vim.opt.rtp:prepend(assert(vim.env.TACH_E2E_PLUGIN, "TACH_E2E_PLUGIN is not set"))
vim.o.swapfile = false

H.report = { observed = {}, steps = {}, events = {}, messages = {} }

-- Notifications, through the plugin's User events; and messages.
for _, name in ipairs({ "TestsChanged", "RunStarted", "TestResult", "RunFinished", "Coverage", "Status" }) do
  H.report.events[name] = {}
  vim.api.nvim_create_autocmd("User", {
    pattern = "TachLs" .. name,
    callback = function(ev)
      table.insert(H.report.events[name], ev.data)
    end,
  })
end
local notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(H.report.messages, { msg = msg, level = level })
  return notify(msg, level, opts)
end

function H.step(name)
  table.insert(H.report.steps, name)
end

--- Wait for `cond`, at most `ms`; an error naming `what` when it does not come.
function H.wait(what, cond, ms)
  if not vim.wait(ms or H.WAIT_MS, cond, 20) then
    error(string.format("timed out after %d ms waiting for %s", ms or H.WAIT_MS, what), 2)
  end
end

function H.count(event)
  return #H.report.events[event]
end

function H.last(event)
  return H.report.events[event][#H.report.events[event]]
end

--- A condition: a tach/runFinished arrived after the first `n`.
function H.run_finished_after(n)
  return function()
    return H.count("RunFinished") > n
  end
end

--- Edit `rel` (relative to the project) and wait for the tach_ls client and the file's tests.
function H.open(rel)
  vim.cmd.edit(vim.fn.fnameescape(H.root .. "/" .. rel))
  local bufnr = vim.api.nvim_get_current_buf()
  local client
  H.wait("the tach_ls client to attach to " .. rel, function()
    client = vim.lsp.get_clients({ bufnr = bufnr, name = "tach_ls" })[1]
    return client ~= nil and client.initialized
  end)
  local fname = vim.fs.normalize(H.root .. "/" .. rel)
  H.wait("tach/testsChanged for " .. rel, function()
    return require("tach_ls.state").trees[fname] ~= nil
  end)
  return bufnr, client
end

--- The lenses as Neovim drew them: "0-based line" -> "Run | Debug".
function H.drawn_lenses(bufnr, client)
  local out = {}
  local ns = vim.lsp.codelens.__namespaces[client.id]
  for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })) do
    local text = {}
    for _, chunk in ipairs(mark[4].virt_text or {}) do
      table.insert(text, chunk[1])
    end
    out[tostring(mark[2])] = table.concat(text)
  end
  return out
end

--- The lens titles the client holds for one line.
function H.lens_titles_at(bufnr, line)
  local out = {}
  for _, lens in ipairs(require("tach_ls.lenses").titles(bufnr)) do
    if lens.line == line then
      table.insert(out, lens.title)
    end
  end
  return out
end

function H.has_lens(bufnr, line, pattern)
  for _, title in ipairs(H.lens_titles_at(bufnr, line)) do
    if title:match(pattern) then
      return true
    end
  end
  return false
end

--- The result marks: "0-based line" -> { sign, hl, text }.
function H.result_marks(bufnr)
  local out = {}
  local ns = require("tach_ls.results").ns
  for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })) do
    local d = mark[4]
    out[tostring(mark[2])] = {
      sign = vim.trim(d.sign_text or ""),
      hl = d.sign_hl_group,
      text = d.virt_text and d.virt_text[1][1] or nil,
    }
  end
  return out
end

function H.diagnostics(bufnr)
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    table.insert(out, { lnum = d.lnum, message = d.message, source = d.source, severity = d.severity })
  end
  table.sort(out, function(a, b)
    return a.lnum < b.lnum
  end)
  return out
end

--- ]d: the next diagnostic (vim.diagnostic.jump on 0.11, goto_next before).
function H.next_diagnostic()
  if vim.diagnostic.jump then
    vim.diagnostic.jump({ count = 1 })
  else
    vim.diagnostic.goto_next({ float = false })
  end
  return vim.api.nvim_win_get_cursor(0)[1]
end

local function finish(ok, err)
  if not ok then
    H.report.error = tostring(err)
  end
  local file = assert(io.open(assert(vim.env.TACH_E2E_REPORT, "TACH_E2E_REPORT is not set"), "w"))
  file:write(vim.json.encode(H.report))
  file:close()
  vim.cmd(ok and "qall!" or "cquit! 1")
end

--- Run `scenario` once Neovim has started; write the report and quit, whatever happens.
function H.run(scenario)
  vim.api.nvim_create_autocmd("VimEnter", {
    once = true,
    callback = function()
      vim.schedule(function()
        finish(xpcall(scenario, debug.traceback))
      end)
    end,
  })
end

return H
