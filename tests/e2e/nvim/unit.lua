-- Unit tests of the plugin's Lua logic, inside a real headless Neovim, no server.
--
-- Run by tests/e2e/test_neovim.py as `nvim --headless --clean -l unit.lua`, with
-- TACH_E2E_PLUGIN (editors/neovim) and TACH_E2E_REPORT (the JSON report). Each
-- case is `group.name`; the report maps it to "ok" or the error. The server
-- side of coverage is not built yet, so the coverage cases feed notifications
-- shaped as the contract says (`{"uri", "covered", "missed"}`) to the handler.
vim.opt.rtp:prepend(assert(vim.env.TACH_E2E_PLUGIN, "TACH_E2E_PLUGIN is not set"))

local report = { cases = {}, protocol = nil, messages = {} }
vim.notify = function(msg) -- recorded, not printed: the cases that care replace it
  table.insert(report.messages, msg)
end
local cases = {}

local function case(name, fn)
  table.insert(cases, { name = name, fn = fn })
end

local function eq(actual, expected, what)
  if not vim.deep_equal(actual, expected) then
    error(string.format("%s: expected %s, got %s", what or "value", vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

local function truthy(value, what)
  if not value then
    error((what or "condition") .. " is false", 2)
  end
end

local config = require("tach_ls.config")
local protocol = require("tach_ls.protocol")
local tree_mod = require("tach_ls.tree")
local results = require("tach_ls.results")
local coverage = require("tach_ls.coverage")
local handlers = require("tach_ls.handlers")
local state = require("tach_ls.state")
local output = require("tach_ls.output")

local ROOT = "/tmp/tach-ls-unit/proj"
local URI = "file://" .. ROOT .. "/tests/test_x.py"

local function range(first, last)
  return { start = { line = first, character = 0 }, ["end"] = { line = last, character = 0 } }
end

-- The tree tach/testsChanged sends for a file like tests/fixtures/projects/nvim_basic's test file.
local function tests()
  local f = "tests/test_x.py"
  return {
    { id = f, label = "test_x.py", kind = "module", uri = URI, range = range(0, 22), selection_line = 0, parent = vim.NIL },
    { id = f .. "::TestA", label = "TestA", kind = "class", uri = URI, range = range(19, 22), selection_line = 19, parent = f },
    { id = f .. "::test_a", label = "test_a", kind = "function", uri = URI, range = range(5, 6), selection_line = 5, parent = f },
    { id = f .. "::test_p", label = "test_p", kind = "function", uri = URI, range = range(14, 16), selection_line = 15, parent = f },
    { id = f .. "::test_p[1]", label = "[1]", kind = "case", uri = URI, range = range(14, 16), selection_line = 15, parent = f .. "::test_p" },
    { id = f .. "::test_p[2]", label = "[2]", kind = "case", uri = URI, range = range(14, 16), selection_line = 15, parent = f .. "::test_p" },
    { id = f .. "::TestA::test_m", label = "test_m", kind = "method", uri = URI, range = range(20, 22), selection_line = 20, parent = f .. "::TestA" },
  }
end

-- A new buffer named `name`; one an earlier (failed) case left behind goes first.
local function named_buffer(name)
  for _, old in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_get_name(old) == name then
      vim.api.nvim_buf_delete(old, { force = true })
    end
  end
  local bufnr = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_buf_set_name(bufnr, name)
  return bufnr
end

-- A buffer named as the file of URI, 23 lines long.
local function file_buffer()
  local bufnr = named_buffer(ROOT .. "/tests/test_x.py")
  local lines = {}
  for i = 1, 23 do
    lines[i] = "line " .. i
  end
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  return bufnr
end

local function marks(bufnr, ns)
  local out = {}
  for _, m in ipairs(vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })) do
    out[m[2]] = { sign = vim.trim(m[4].sign_text or ""), hl = m[4].sign_hl_group, text = m[4].virt_text and m[4].virt_text[1][1] }
  end
  return out
end

local function handle(method, params)
  handlers.handlers()[method](nil, params, { method = method })
end

-- config -------------------------------------------------------------------------------
case("config.defaults_are_valid", function()
  local cfg, errors = config.resolve(nil)
  eq(errors, {}, "errors")
  eq(cfg.run_on_save, "off", "run_on_save")
  eq(cfg.root_markers, { "pyproject.toml", "pytest.ini", "setup.cfg", ".git" }, "root_markers")
end)

case("config.invalid_values_are_named", function()
  local cfg, errors = config.resolve({ run_on_save = "always", workers = 1.5, coverage = "yes", signs = { passed = "PASS" } })
  eq(cfg, nil, "config")
  local text = table.concat(errors, "\n")
  truthy(text:find('run_on_save must be one of affected, file, off (got "always")', 1, true), text)
  truthy(text:find("workers must be a whole number (got 1.5)", 1, true), text)
  truthy(text:find('coverage must be a boolean (got "yes")', 1, true), text)
  truthy(text:find("signs.passed must be a sign text of 1 or 2 cells", 1, true), text)
end)

case("config.unknown_option_is_an_error", function()
  local _, errors = config.resolve({ run_on_safe = "file" })
  eq(errors, { 'unknown option "run_on_safe"' }, "errors")
end)

case("config.lists_replace_defaults_and_tables_merge", function()
  local cfg = config.resolve({ root_markers = { "tox.ini" }, signs = { passed = "P" }, cmd = "tach-ls" })
  eq(cfg.root_markers, { "tox.ini" }, "root_markers")
  eq(cfg.signs.passed, "P", "signs.passed")
  eq(cfg.signs.failed, "✗", "signs.failed (default kept)")
  eq(cfg.cmd, { "tach-ls" }, "cmd as a string")
end)

case("config.server_settings_have_the_contract_shape", function()
  local cfg = config.resolve({ run_on_save = "affected", coverage = false, isolation = "strict", isolation_scope = "test", workers = 2, python = "/venv/bin/python" })
  eq(config.server_settings(cfg), {
    ["tach-ls"] = { runOnSave = "affected", coverage = false, isolation = "strict", isolationScope = "test", workers = 2, python = "/venv/bin/python" },
  }, "settings")
  -- Unset options are left out, so the server's defaults (and pyproject) apply.
  eq(config.server_settings(config.resolve({}))["tach-ls"], { runOnSave = "off", coverage = false }, "defaults")
end)

-- tree ---------------------------------------------------------------------------------
case("tree.test_at_picks_the_innermost_test", function()
  local tree = tree_mod.index(tests())
  eq(tree_mod.test_at(tree, 6).id, "tests/test_x.py::test_a", "in test_a's body")
  eq(tree_mod.test_at(tree, 16).id, "tests/test_x.py::test_p", "a parametrized function, not one case")
  eq(tree_mod.test_at(tree, 21).id, "tests/test_x.py::TestA::test_m", "a method, not its class")
  eq(tree_mod.test_at(tree, 19).id, "tests/test_x.py::TestA", "the class line: the class")
end)

case("tree.test_at_outside_tests_is_nil", function()
  local tree = tree_mod.index(tests())
  eq(tree_mod.test_at(tree, 2), nil, "an import line")
end)

case("tree.line_of_cases_inherited_and_removed", function()
  local tree = tree_mod.index(tests())
  eq(tree_mod.line_of(tree, "tests/test_x.py::test_p[2]"), 15, "a case")
  eq(tree_mod.line_of(tree, "tests/test_x.py::test_p[3]"), 15, "a case only collection knows")
  eq(tree_mod.line_of(tree, "tests/test_x.py::TestA::test_inherited"), 19, "an inherited test shows at its class")
  eq(tree_mod.line_of(tree, "tests/test_x.py::test_gone"), nil, "a removed test is not shown")
end)

case("tree.selects_targets", function()
  truthy(tree_mod.selects("tests/test_x.py", "tests/test_x.py::test_a"), "a file")
  truthy(tree_mod.selects("tests", "tests/test_x.py::test_a"), "a directory")
  truthy(tree_mod.selects("tests/test_x.py::test_p", "tests/test_x.py::test_p[1]"), "a function selects its cases")
  truthy(not tree_mod.selects("tests/test_x.py::test_a", "tests/test_x.py::test_ab"), "a prefix is not a parent")
  truthy(not tree_mod.selects("tests/test_x", "tests/test_x.py::test_a"), "a file name prefix")
  local tree = tree_mod.index(tests())
  eq(#tree_mod.selected(tree, {}), 4, "everything: the leaves")
  eq(tree_mod.selected(tree, { "tests/test_x.py::test_p" }), { "tests/test_x.py::test_p[1]", "tests/test_x.py::test_p[2]" }, "cases")
end)

-- results ------------------------------------------------------------------------------
case("results.summarize", function()
  eq(results.summarize({ { status = "passed", duration_ms = 3.2 } }).text, "passed 3 ms", "one")
  local s = results.summarize({ { status = "passed", duration_ms = 2 }, { status = "failed", duration_ms = 1500 } })
  eq({ s.status, s.category, s.text }, { "failed", "failed", "1 failed, 1 passed 1.5 s" }, "worst first")
  eq(results.summarize({ { status = "passed", duration_ms = 1 }, { status = "running" } }).category, "running", "running wins")
  eq(results.summarize({ { status = "xfailed", duration_ms = 0.2 } }).category, "skipped", "xfailed looks skipped")
  eq(results.summarize({}), nil, "nothing")
end)

case("results.render_signs_and_virtual_text_from_notifications", function()
  state.reset()
  local bufnr = file_buffer()
  handle(protocol.TESTS_CHANGED, { uri = URI, version = 1, tests = tests(), errors = {} })
  handle(protocol.RUN_STARTED, { run_id = 7, folder = "file://" .. ROOT, tests = { "tests/test_x.py" }, reason = "command" })
  local running = marks(bufnr, results.ns)
  eq(running[5], { sign = "…", hl = "TachLsRunning", text = "running…" }, "running at test_a")
  handle(protocol.TEST_RESULT, {
    run_id = 7, nodeid = "tests/test_x.py::test_a", status = "passed", duration_ms = 4, message = "", uri = URI, line = 5, output = "",
  })
  handle(protocol.TEST_RESULT, {
    run_id = 7, nodeid = "tests/test_x.py::test_p[1]", status = "failed", duration_ms = 2, message = "assert 1 == 2", uri = URI, line = 16, output = "hi\n",
  })
  handle(protocol.RUN_FINISHED, { run_id = 7, passed = 1, failed = 1, skipped = 0, errors = 0, total = 2, duration_ms = 9, cancelled = false, counts = {} })
  local done = marks(bufnr, results.ns)
  eq(done[5], { sign = "✓", hl = "TachLsPassed", text = "passed 4 ms" }, "test_a")
  eq(done[15], { sign = "✗", hl = "TachLsFailed", text = "failed 2 ms" }, "test_p: its one result")
  eq(done[20], nil, "test_m: not run, no mark once the run finished")
  -- The tree moves (two lines added above): the marks follow it.
  local moved = tests()
  for _, node in ipairs(moved) do
    node.selection_line = node.selection_line + 2
  end
  handle(protocol.TESTS_CHANGED, { uri = URI, version = 2, tests = moved, errors = {} })
  eq(marks(bufnr, results.ns)[7].sign, "✓", "test_a moved to line 7")
  vim.api.nvim_buf_delete(bufnr, { force = true })
end)

case("results.virtual_text_off_keeps_signs", function()
  state.reset()
  local bufnr = file_buffer()
  handle(protocol.TESTS_CHANGED, { uri = URI, version = 1, tests = tests(), errors = {} })
  state.results_of(vim.fs.normalize(ROOT .. "/tests/test_x.py"))["tests/test_x.py::test_a"] = { nodeid = "tests/test_x.py::test_a", status = "skipped", duration_ms = 0 }
  local cfg = config.resolve({ virtual_text = false })
  results.render(bufnr, cfg)
  eq(marks(bufnr, results.ns)[5], { sign = "○", hl = "TachLsSkipped" }, "a sign, no text")
  vim.api.nvim_buf_delete(bufnr, { force = true })
end)

case("handlers.fire_user_events", function()
  local seen
  local id = vim.api.nvim_create_autocmd("User", { pattern = "TachLsStatus", callback = function(ev) seen = ev.data end })
  handle(protocol.STATUS, { folder = "file://" .. ROOT, state = "ready", layer = "collected", detail = "" })
  vim.api.nvim_del_autocmd(id)
  eq(seen and seen.state, "ready", "the event's data")
  eq(state.status[ROOT].layer, "collected", "stored by folder")
end)

case("handlers.summary", function()
  eq(handlers.summary({ counts = { passed = 3, failed = 1 }, duration_ms = 45, total = 4 }), "3 passed, 1 failed in 45 ms", "counts")
  eq(handlers.summary({ counts = {}, duration_ms = 2, total = 0, cancelled = true }), "0 tests in 2 ms (cancelled)", "cancelled")
end)

-- coverage -----------------------------------------------------------------------------
case("coverage.signs_from_a_notification_when_toggled_on", function()
  state.reset()
  local cfg = config.resolve({})
  config.current = cfg
  local bufnr = file_buffer()
  handle(protocol.COVERAGE, { uri = URI, covered = { 0, 3, 5 }, missed = { 2, 40 } })
  eq(coverage.signs(bufnr), { covered = {}, missed = {} }, "off by default: nothing shown")
  vim.api.nvim_set_current_buf(bufnr)
  eq(coverage.toggle(bufnr, cfg), true, "toggled on")
  eq(coverage.signs(bufnr), { covered = { 0, 3, 5 }, missed = { 2 } }, "covered and missed (line 40 is past the end)")
  local m = marks(bufnr, coverage.ns)
  eq({ m[3].sign, m[3].hl, m[2].hl }, { "▎", "TachLsCovered", "TachLsMissed" }, "sign and groups")
  -- A new notification replaces the file's coverage.
  handle(protocol.COVERAGE, { uri = URI, covered = { 1 }, missed = {} })
  eq(coverage.signs(bufnr), { covered = { 1 }, missed = {} }, "replaced")
  eq(coverage.toggle(bufnr, cfg), false, "toggled off")
  eq(coverage.signs(bufnr), { covered = {}, missed = {} }, "hidden")
  vim.api.nvim_buf_delete(bufnr, { force = true })
end)

case("coverage.per_buffer_toggle_and_option_default", function()
  state.reset()
  local cfg = config.resolve({ coverage = true })
  local a = file_buffer()
  local b = named_buffer(ROOT .. "/src/y.py")
  vim.api.nvim_buf_set_lines(b, 0, -1, false, { "a", "b", "c" })
  coverage.store({ uri = URI, covered = { 1 }, missed = { 2 } })
  coverage.store({ uri = "file://" .. ROOT .. "/src/y.py", covered = { 0 }, missed = { 1 } })
  coverage.render(a, cfg)
  coverage.render(b, cfg)
  coverage.toggle(a, cfg)
  eq(coverage.signs(a), { covered = {}, missed = {} }, "a: toggled off")
  eq(coverage.signs(b), { covered = { 0 }, missed = { 1 } }, "b: still on (the option's default)")
  vim.api.nvim_buf_delete(a, { force = true })
  vim.api.nvim_buf_delete(b, { force = true })
end)

case("coverage.toggle_turns_collection_on_once", function()
  local client = require("tach_ls.client")
  client.overrides = {}
  local cfg = config.resolve({})
  config.current = cfg
  local bufnr = file_buffer()
  vim.api.nvim_set_current_buf(bufnr)
  eq(client.collecting(cfg), false, "off by default")
  vim.cmd("TachCoverageToggle")
  eq(client.collecting(cfg), true, "on after :TachCoverageToggle")
  eq(client.settings(cfg)["tach-ls"].coverage, true, "the settings sent to the server")
  client.overrides = {}
  vim.api.nvim_buf_delete(bufnr, { force = true })
end)

-- output, commands, setup --------------------------------------------------------------
case("output.lines", function()
  eq(output.lines({
    { nodeid = "t.py::a", status = "failed", duration_ms = 3, message = "assert 1 == 2\nmore", output = "printed\n" },
    { nodeid = "t.py::b", status = "passed", duration_ms = 0.5, message = "", output = "" },
  }), {
    "t.py::a  failed  3 ms", "assert 1 == 2", "more", "--- captured output ---", "printed",
    "", "t.py::b  passed  <1 ms", "(no captured output)",
  }, "lines")
end)

case("commands.run_without_a_test_under_the_cursor_says_so", function()
  state.reset()
  local bufnr = file_buffer()
  vim.api.nvim_set_current_buf(bufnr)
  handle(protocol.TESTS_CHANGED, { uri = URI, version = 1, tests = tests(), errors = {} })
  vim.api.nvim_win_set_cursor(0, { 3, 0 })
  local node, why = require("tach_ls.commands").test_at_cursor()
  eq(node, nil, "node")
  eq(why, "no test at line 3; :TachRunFile runs the whole file", "message")
  vim.api.nvim_buf_delete(bufnr, { force = true })
end)

case("commands.are_defined", function()
  local defined = vim.api.nvim_get_commands({})
  for _, name in ipairs({ "TachRun", "TachRunFile", "TachRunAll", "TachRunAffected", "TachCancel", "TachCoverageToggle", "TachOutput" }) do
    truthy(defined[name], ":" .. name .. " defined")
  end
end)

case("setup.highlight_groups_link_to_diagnostics", function()
  eq(vim.api.nvim_get_hl(0, { name = "TachLsPassed" }).link, "DiagnosticOk", "TachLsPassed")
  eq(vim.api.nvim_get_hl(0, { name = "TachLsMissed" }).link, "DiagnosticError", "TachLsMissed")
  vim.api.nvim_set_hl(0, "TachLsCovered", { fg = "#00ff00" })
  require("tach_ls.highlights").define()
  eq(vim.api.nvim_get_hl(0, { name = "TachLsCovered" }).fg, 0x00ff00, "a user's style is kept")
end)

case("setup.invalid_options_are_reported_not_raised", function()
  local messages = {}
  local notify = vim.notify
  vim.notify = function(msg)
    table.insert(messages, msg)
  end
  local ok = require("tach_ls").setup({ run_on_save = "sometimes" })
  vim.notify = notify
  eq(ok, false, "setup's result")
  truthy(messages[1] and messages[1]:find("run_on_save must be one of", 1, true), vim.inspect(messages))
end)

case("setup.old_neovim_gets_a_clear_message", function()
  local messages = {}
  local notify, has = vim.notify, vim.fn.has
  vim.notify = function(msg)
    table.insert(messages, msg)
  end
  vim.fn.has = function(feature)
    if feature == "nvim-0.10" then
      return 0
    end
    return has(feature)
  end
  local ok = require("tach_ls").setup({})
  vim.notify, vim.fn.has = notify, has
  eq(ok, false, "setup's result")
  truthy(messages[1] and messages[1]:find("tach-ls needs Neovim 0.10 or newer", 1, true), vim.inspect(messages))
end)

case("setup.no_project_no_server", function()
  local client = require("tach_ls.client")
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, "p")
  local bufnr = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_buf_set_name(bufnr, dir .. "/script.py")
  eq(client.start(bufnr, config.resolve({ root_markers = { "no-such-marker.toml" } })), nil, "no root marker: no client")
  vim.api.nvim_buf_delete(bufnr, { force = true })
end)

case("setup.lspconfig_style_configs", function()
  local project = vim.fn.tempname()
  vim.fn.mkdir(project .. "/tests", "p")
  vim.fn.writefile({}, project .. "/pytest.ini")
  local legacy = require("tach_ls").lspconfig({ cmd = { "tach-ls", "serve" }, run_on_save = "file" })
  local conf = legacy.default_config
  eq(conf.root_dir(project .. "/tests/test_a.py"), project, "root_dir from pytest.ini")
  eq(conf.cmd, { "tach-ls", "serve" }, "cmd")
  eq(conf.init_options, { ["tach-ls"] = { runOnSave = "file", coverage = false } }, "init_options")
  local methods = vim.tbl_keys(conf.handlers)
  table.sort(methods)
  local expected = vim.deepcopy(protocol.NOTIFICATIONS)
  table.sort(expected)
  eq(methods, expected, "a handler per notification")
  -- lsp/tach_ls.lua (vim.lsp.enable) takes the options of the last lsp_config(opts).
  local native = dofile(vim.env.TACH_E2E_PLUGIN .. "/lsp/tach_ls.lua")
  eq({ native.cmd, native.filetypes, native.root_markers }, {
    { "tach-ls", "serve" }, { "python" }, { "pyproject.toml", "pytest.ini", "setup.cfg", ".git" },
  }, "the native config")
end)

-- run ----------------------------------------------------------------------------------
require("tach_ls").bootstrap()
local ok_count = 0
for _, c in ipairs(cases) do
  local ok, err = xpcall(c.fn, debug.traceback)
  report.cases[c.name] = ok and "ok" or tostring(err)
  ok_count = ok_count + (ok and 1 or 0)
end
report.protocol = protocol
local file = assert(io.open(assert(vim.env.TACH_E2E_REPORT, "TACH_E2E_REPORT is not set"), "w"))
file:write(vim.json.encode(report))
file:close()
