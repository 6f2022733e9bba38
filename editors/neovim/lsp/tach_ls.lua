-- The tach-ls client for vim.lsp.enable("tach_ls") (Neovim 0.11+). It uses the
-- options of an earlier require("tach_ls").lsp_config({ ... }), else the defaults.
return require("tach_ls").lsp_config()
