-- End-to-end scenario: the plugin started with setup() drives the real tach-ls
-- server on a copy of tests/fixtures/projects/nvim_basic, as a user would.
--
-- Run by tests/e2e/test_neovim.py as `nvim --headless --clean -u e2e.lua` (see
-- helpers.lua for the environment). It records what the editor shows after each
-- step (`observed.<step>`) and never asserts: the Python test does.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/helpers.lua")

local COVERAGE_PROBE_MS = 5000 -- how long a run's coverage may trail its tach/runFinished
local TEST_FILE = "tests/test_shapes.py"

H.run(function()
  require("tach_ls").setup({ cmd = { H.python, "-m", "tach_ls" }, run_on_save = "file", workers = 2 })
  local state = require("tach_ls.state")
  local coverage = require("tach_ls.coverage")

  H.step("attach")
  local buf, client = H.open(TEST_FILE)
  H.wait("code lenses at the test lines", function()
    return H.has_lens(buf, 5, "^Run$") and next(H.drawn_lenses(buf, client)) ~= nil
  end)
  H.report.observed.attach = { lenses = require("tach_ls.lenses").titles(buf), drawn = H.drawn_lenses(buf, client) }

  H.step("run the test under the cursor")
  vim.api.nvim_win_set_cursor(0, { 7, 4 }) -- inside test_area (1-based)
  local before = H.count("RunFinished")
  vim.cmd("TachRun")
  H.wait("the :TachRun run to finish", H.run_finished_after(before))
  H.wait("a passed sign at test_area", function()
    local mark = H.result_marks(buf)["5"]
    return mark ~= nil and mark.sign == "✓"
  end)
  H.wait("the status lens of test_area after the run", function()
    return H.has_lens(buf, 5, "^passed")
  end)
  H.report.observed.run = {
    started = H.last("RunStarted"),
    marks = H.result_marks(buf),
    lenses_at_def = H.lens_titles_at(buf, 5),
    drawn = H.drawn_lenses(buf, client),
  }

  H.step("run a parametrized test")
  vim.api.nvim_win_set_cursor(0, { 17, 4 }) -- inside test_area_cases
  before = H.count("RunFinished")
  vim.cmd("TachRun")
  H.wait("the parametrized run to finish", H.run_finished_after(before))
  H.wait("the sign of test_area_cases", function()
    local mark = H.result_marks(buf)["15"]
    return mark ~= nil and mark.sign ~= "…"
  end)
  H.report.observed.parametrized = { started = H.last("RunStarted"), marks = H.result_marks(buf) }

  H.step("break a test and save")
  vim.api.nvim_buf_set_lines(buf, 6, 7, false, { "    assert area(2, 3) == 7" })
  before = H.count("RunFinished")
  vim.cmd.write()
  H.wait("the run on save to finish", H.run_finished_after(before))
  H.wait("a diagnostic at the broken assertion", function()
    return vim.iter(H.diagnostics(buf)):any(function(d)
      return d.lnum == 6
    end)
  end)
  H.wait("a failed sign at test_area", function()
    local mark = H.result_marks(buf)["5"]
    return mark ~= nil and mark.sign == "✗"
  end)
  vim.diagnostic.setloclist({ open = false })
  local loclist = vim.tbl_map(function(item)
    return { lnum = item.lnum, text = item.text }
  end, vim.fn.getloclist(0))
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  local jumps = { H.next_diagnostic(), H.next_diagnostic() }
  H.report.observed.save = {
    started = H.last("RunStarted"),
    diagnostics = H.diagnostics(buf),
    marks = H.result_marks(buf),
    loclist = loclist,
    jumps = jumps,
  }

  H.step("show a test's output")
  vim.api.nvim_win_set_cursor(0, { 22, 8 }) -- inside TestArea.test_square
  local windows = #vim.api.nvim_list_wins()
  vim.cmd("TachOutput")
  local out_buf = vim.api.nvim_get_current_buf()
  H.report.observed.output = {
    new_window = #vim.api.nvim_list_wins() == windows + 1,
    name = vim.api.nvim_buf_get_name(out_buf),
    lines = vim.api.nvim_buf_get_lines(out_buf, 0, -1, false),
  }
  vim.cmd.close()

  H.step("run what the written file affects")
  before = H.count("RunFinished")
  local started_before = H.count("RunStarted")
  vim.cmd("TachRunAffected") -- no arguments: the files written since the last one
  H.wait("the affected run to start", function()
    return H.count("RunStarted") > started_before
  end)
  -- Tests never run before are selected too (no record yet), the slow one among them: stop there.
  vim.cmd("TachCancel")
  H.wait("the affected run to finish", H.run_finished_after(before))
  H.report.observed.affected = { started = H.last("RunStarted"), finished = H.last("RunFinished") }

  H.step("run everything and cancel")
  vim.cmd("split " .. vim.fn.fnameescape(H.root .. "/tests/test_slow.py"))
  local slow_buf = vim.api.nvim_get_current_buf()
  vim.cmd.wincmd("p")
  before = H.count("RunFinished")
  local results_before = H.count("TestResult")
  vim.cmd("TachRunAll")
  -- The five tests of test_shapes.py take milliseconds; once they are in, the
  -- slow test is the one left running.
  H.wait("the fast tests of the run", function()
    return H.count("TestResult") >= results_before + 5
  end)
  local while_running = { marks = H.result_marks(slow_buf), running = vim.tbl_keys(state.running) }
  vim.cmd("TachCancel")
  H.wait("the cancelled run to finish", H.run_finished_after(before))
  H.report.observed.cancel = {
    started = H.last("RunStarted"),
    finished = H.last("RunFinished"),
    while_running = while_running,
    after = { marks = H.result_marks(slow_buf), running = vim.tbl_keys(state.running) },
  }
  vim.api.nvim_win_close(vim.fn.bufwinid(slow_buf), true)

  H.step("coverage")
  local src_file = H.root .. "/src/shapes/__init__.py"
  vim.cmd("split " .. vim.fn.fnameescape(src_file))
  local src_buf = vim.api.nvim_get_current_buf()
  vim.cmd("TachCoverageToggle")
  local toggled = vim.b[src_buf].tach_ls_coverage
  vim.cmd.wincmd("p")
  before = H.count("RunFinished")
  local seen = H.count("Coverage")
  vim.cmd("TachRunFile")
  H.wait("the coverage run to finish", H.run_finished_after(before))
  -- The probe: does the server send tach/coverage at all? (Bounded; no sleep.)
  local received = vim.wait(COVERAGE_PROBE_MS, function()
    return state.coverage[vim.fs.normalize(src_file)] ~= nil
  end, 20)
  H.report.observed.coverage = {
    toggled = toggled,
    received = received,
    notifications = H.count("Coverage") - seen,
    src_signs = coverage.signs(src_buf),
    test_signs = coverage.signs(buf),
    settings_sent = require("tach_ls.client").settings(require("tach_ls.config").get())["tach-ls"],
  }

  H.step("edit above the tests")
  vim.api.nvim_set_current_win(vim.fn.bufwinid(buf))
  vim.api.nvim_buf_set_lines(buf, 0, 0, false, { "# one", "# two" }) -- unsaved
  H.wait("the lenses and the signs to move two lines down", function()
    local drawn = H.drawn_lenses(buf, client)
    local marks = H.result_marks(buf)
    return drawn["7"] ~= nil and drawn["5"] == nil and marks["7"] ~= nil and marks["5"] == nil
  end)
  H.report.observed.edit = { drawn = H.drawn_lenses(buf, client), marks = H.result_marks(buf) }

  H.step("checkhealth")
  vim.cmd("checkhealth tach_ls")
  H.report.observed.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
end)
