--- Code lenses: asked for again when the tests of a file change and after each run.
---
--- Neovim does not advertise `workspace/codeLens/refresh`, so the plugin asks
--- itself. `vim.lsp.codelens.refresh()` drops a request while one is in flight
--- for the buffer, which would leave stale lenses after a burst of changes;
--- here a request in flight marks the buffer dirty and one more request follows.
local protocol = require("tach_ls.protocol")

local M = {}

local inflight = {} -- bufnr -> when its request left (vim.uv.now(), ms)
local dirty = {} -- bufnr -> true: changed again while a request was in flight
local STALE_MS = 10000 -- a request unanswered this long (the server died) no longer blocks

local function client_of(bufnr)
  return vim.lsp.get_clients({ bufnr = bufnr, name = protocol.CLIENT_NAME })[1]
end

--- Ask the server for the lenses of `bufnr` and draw them (Neovim's own renderer).
function M.refresh(bufnr)
  if not vim.api.nvim_buf_is_loaded(bufnr) then
    return
  end
  local client = client_of(bufnr)
  if not client then
    return
  end
  if inflight[bufnr] and vim.uv.now() - inflight[bufnr] < STALE_MS then
    dirty[bufnr] = true
    return
  end
  inflight[bufnr] = vim.uv.now()
  dirty[bufnr] = nil
  local params = { textDocument = vim.lsp.util.make_text_document_params(bufnr) }
  require("tach_ls.client").request(client, "textDocument/codeLens", params, function(err, result, ctx)
    inflight[bufnr] = nil
    if vim.api.nvim_buf_is_loaded(bufnr) then
      vim.lsp.codelens.on_codelens(err, result, ctx)
    end
    if dirty[bufnr] then
      M.refresh(bufnr)
    end
  end, bufnr)
end

--- Refresh every loaded buffer the tach-ls client is attached to.
function M.refresh_all()
  for _, client in ipairs(vim.lsp.get_clients({ name = protocol.CLIENT_NAME })) do
    for bufnr in pairs(client.attached_buffers or {}) do
      M.refresh(bufnr)
    end
  end
end

--- The lenses of a buffer as the editor has them: list of { line, title } (0-based), in order.
function M.titles(bufnr)
  local out = {}
  for i, lens in ipairs(vim.lsp.codelens.get(bufnr)) do
    table.insert(out, { line = lens.range.start.line, title = lens.command and lens.command.title or "", i = i })
  end
  table.sort(out, function(a, b)
    if a.line ~= b.line then
      return a.line < b.line
    end
    return a.i < b.i
  end)
  for _, lens in ipairs(out) do
    lens.i = nil
  end
  return out
end

return M
