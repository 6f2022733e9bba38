--- Options of `require("tach_ls").setup()`: defaults, validation, and the server's settings.
---
--- No editor state is touched here (default_cmd only looks at $PATH), so the
--- unit tests call it directly.
local protocol = require("tach_ls.protocol")

local M = {}

local RUN_ON_SAVE = { off = true, file = true, affected = true }
local ISOLATION = { off = true, auto = true, strict = true }
local ISOLATION_SCOPE = { batch = true, test = true }

--- The defaults; `setup()` merges the user's options over a copy.
function M.defaults()
  return {
    cmd = nil, -- nil: `tach-ls serve` if on PATH, else `python3 -m tach_ls`
    cmd_env = nil, -- extra environment for the server process
    python = nil, -- the project's interpreter; nil: the server picks ($VIRTUAL_ENV, .venv/, venv/, its own)
    run_on_save = "off", -- "off" | "file" | "affected"
    coverage = false, -- collect coverage (and show it in buffers toggled on)
    isolation = nil, -- "off" | "auto" | "strict"; nil: the server's default
    isolation_scope = nil, -- "batch" | "test"; nil: the server's default (batch)
    workers = nil, -- parallel workers; nil: the server's default
    timeout = nil, -- seconds per test; nil: the server's default
    filetypes = { "python" },
    root_markers = { "pyproject.toml", "pytest.ini", "setup.cfg", ".git" },
    codelens = true, -- refresh code lenses when tests change and after runs
    signs = { passed = "✓", failed = "✗", skipped = "○", running = "…" },
    virtual_text = true, -- status and duration at the end of each test's def line
    coverage_signs = { covered = "▎", missed = "▎" },
    on_attach = nil, -- function(client, bufnr), called when the client attaches to a buffer
    capabilities = nil, -- merged over vim.lsp.protocol.make_client_capabilities()
  }
end

local function one_of(name, value, allowed, nullable)
  if value == nil and nullable then
    return nil
  end
  if allowed[value] then
    return nil
  end
  local names = vim.tbl_keys(allowed)
  table.sort(names)
  return string.format("%s must be one of %s (got %s)", name, table.concat(names, ", "), vim.inspect(value))
end

local function of_type(name, value, expected, nullable)
  if value == nil and nullable then
    return nil
  end
  if type(value) == expected then
    return nil
  end
  return string.format("%s must be a %s (got %s)", name, expected, vim.inspect(value))
end

local function positive(name, value)
  if value == nil or (type(value) == "number" and value > 0) then
    return nil
  end
  return string.format("%s must be a positive number (got %s)", name, vim.inspect(value))
end

local function cmd_list(name, value)
  if value == nil then
    return nil
  end
  if type(value) == "table" and #value > 0 and vim.iter(value):all(function(v)
    return type(v) == "string"
  end) then
    return nil
  end
  return string.format("%s must be a non-empty list of strings, the server's command line (got %s)", name, vim.inspect(value))
end

local function whole(name, value)
  local err = positive(name, value)
  if err or value == nil or value == math.floor(value) then
    return err
  end
  return string.format("%s must be a whole number (got %s)", name, vim.inspect(value))
end

-- A sign is one or two cells wide; anything else makes nvim_buf_set_extmark fail later.
local function sign_texts(keys)
  return function(name, value)
    local err = of_type(name, value, "table")
    if err then
      return err
    end
    for _, key in ipairs(keys) do
      local text = value[key]
      if type(text) ~= "string" or vim.fn.strdisplaywidth(text) < 1 or vim.fn.strdisplaywidth(text) > 2 then
        return string.format("%s.%s must be a sign text of 1 or 2 cells (got %s)", name, key, vim.inspect(text))
      end
    end
    return nil
  end
end

--- One check per option: also the list of the options there are.
local CHECKS = {
  cmd = cmd_list,
  cmd_env = function(n, v) return of_type(n, v, "table", true) end,
  python = function(n, v) return of_type(n, v, "string", true) end,
  run_on_save = function(n, v) return one_of(n, v, RUN_ON_SAVE) end,
  coverage = function(n, v) return of_type(n, v, "boolean") end,
  isolation = function(n, v) return one_of(n, v, ISOLATION, true) end,
  isolation_scope = function(n, v) return one_of(n, v, ISOLATION_SCOPE, true) end,
  workers = whole,
  timeout = positive,
  filetypes = function(n, v) return of_type(n, v, "table") end,
  root_markers = function(n, v) return of_type(n, v, "table") end,
  codelens = function(n, v) return of_type(n, v, "boolean") end,
  signs = sign_texts({ "passed", "failed", "skipped", "running" }),
  virtual_text = function(n, v) return of_type(n, v, "boolean") end,
  coverage_signs = sign_texts({ "covered", "missed" }),
  on_attach = function(n, v) return of_type(n, v, "function", true) end,
  capabilities = function(n, v) return of_type(n, v, "table", true) end,
}

--- Merge `opts` over the defaults and check them.
--- @return table|nil config, string[] errors (empty when valid)
function M.resolve(opts)
  if opts ~= nil and type(opts) ~= "table" then
    return nil, { "setup() takes a table of options (got " .. vim.inspect(opts) .. ")" }
  end
  opts = vim.deepcopy(opts or {})
  if type(opts.cmd) == "string" then
    opts.cmd = { opts.cmd }
  end
  local errors = {}
  local keys = vim.tbl_keys(opts)
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, key in ipairs(keys) do
    if CHECKS[key] == nil then
      table.insert(errors, "unknown option " .. vim.inspect(key))
    end
  end
  local cfg = vim.tbl_deep_extend("force", M.defaults(), opts)
  for _, list in ipairs({ "cmd", "filetypes", "root_markers" }) do
    if opts[list] ~= nil then
      cfg[list] = opts[list] -- a list replaces the default; merging by index would mix them
    end
  end
  local names = vim.tbl_keys(CHECKS)
  table.sort(names)
  for _, name in ipairs(names) do
    local err = CHECKS[name](name, cfg[name])
    if err then
      table.insert(errors, err)
    end
  end
  if #errors > 0 then
    return nil, errors
  end
  return cfg, {}
end

--- The default server command: the `tach-ls` script if it is on PATH, else the module.
function M.default_cmd()
  if vim.fn.executable("tach-ls") == 1 then
    return { "tach-ls", "serve" }
  end
  return { vim.fn.executable("python3") == 1 and "python3" or "python", "-m", "tach_ls" }
end

--- The server's settings section, as initializationOptions and didChangeConfiguration carry it.
function M.server_settings(cfg)
  local section = {
    runOnSave = cfg.run_on_save,
    coverage = cfg.coverage,
    python = cfg.python,
    isolation = cfg.isolation,
    isolationScope = cfg.isolation_scope,
    workers = cfg.workers,
    timeout = cfg.timeout,
  }
  return { [protocol.SETTINGS_SECTION] = section }
end

--- The options in use: what setup() resolved, else the defaults (lspconfig users may skip setup()).
function M.get()
  if M.current == nil then
    M.current = M.resolve({})
  end
  return M.current
end

return M
