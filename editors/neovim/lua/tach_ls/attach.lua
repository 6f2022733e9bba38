--- What happens when the tach-ls client attaches to a buffer, however it was started
--- (setup(), vim.lsp.enable, nvim-lspconfig): draw what is known, keep lenses fresh,
--- remember written files for :TachRunAffected.
local config = require("tach_ls.config")
local coverage = require("tach_ls.coverage")
local lenses = require("tach_ls.lenses")
local protocol = require("tach_ls.protocol")
local results = require("tach_ls.results")
local state = require("tach_ls.state")
local util = require("tach_ls.util")

local M = {}

local group = vim.api.nvim_create_augroup("tach_ls.buffers", { clear = true })

function M.on_attach(bufnr)
  local cfg = config.get()
  results.render(bufnr, cfg)
  coverage.render(bufnr, cfg)
  if cfg.codelens then
    lenses.refresh(bufnr)
  end
  vim.api.nvim_clear_autocmds({ group = group, buffer = bufnr })
  vim.api.nvim_create_autocmd("BufEnter", {
    group = group,
    buffer = bufnr,
    desc = "tach-ls: refresh lenses",
    callback = function(ev)
      if config.get().codelens then
        lenses.refresh(ev.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd("BufWritePost", {
    group = group,
    buffer = bufnr,
    desc = "tach-ls: remember the file for :TachRunAffected",
    callback = function(ev)
      state.saved[util.buf_fname(ev.buf)] = true
    end,
  })
end

--- Listen for LspAttach of the tach-ls client (once per session).
function M.listen()
  vim.api.nvim_create_autocmd("LspAttach", {
    group = vim.api.nvim_create_augroup("tach_ls.attach", { clear = true }),
    desc = "tach-ls: draw results, coverage and lenses in the attached buffer",
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == protocol.CLIENT_NAME then
        M.on_attach(ev.buf)
      end
    end,
  })
end

return M
