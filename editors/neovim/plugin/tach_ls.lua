-- tach-ls: commands, highlight groups and the attach hook. Starting the
-- client is setup()'s job (or vim.lsp.enable("tach_ls") on Neovim 0.11+).
if vim.g.loaded_tach_ls then
  return
end
vim.g.loaded_tach_ls = 1
require("tach_ls").bootstrap()
