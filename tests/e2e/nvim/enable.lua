-- End-to-end scenario: no setup(); the client comes from the plain configuration
-- (lsp/tach_ls.lua through vim.lsp.config + vim.lsp.enable, as an
-- nvim-lspconfig user would), and the plugin still draws lenses and results.
--
-- Run by tests/e2e/test_neovim.py as `nvim --headless --clean -u enable.lua`.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/helpers.lua")

H.run(function()
  require("tach_ls").lsp_config({ cmd = { H.python, "-m", "tach_ls" } })
  vim.lsp.config("tach_ls", {}) -- lsp/tach_ls.lua on the runtimepath gives the rest
  vim.lsp.enable("tach_ls")

  H.step("attach")
  local buf, client = H.open("tests/test_shapes.py")
  H.wait("code lenses", function()
    return H.has_lens(buf, 5, "^Run$")
  end)
  H.step("run")
  vim.api.nvim_win_set_cursor(0, { 7, 4 })
  local before = H.count("RunFinished")
  vim.cmd("TachRun")
  H.wait("the run to finish", H.run_finished_after(before))
  H.wait("a passed sign at test_area", function()
    local mark = H.result_marks(buf)["5"]
    return mark ~= nil and mark.sign == "✓"
  end)
  H.report.observed.enable = {
    root_dir = client.root_dir,
    init_options = client.config.init_options,
    drawn = H.drawn_lenses(buf, client),
    marks = H.result_marks(buf),
  }
end)
