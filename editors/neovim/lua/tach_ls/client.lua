--- The LSP client: its configuration, starting it for a buffer, requests, commands, settings.
---
--- `lsp_config()` is a plain client configuration that `vim.lsp.start`,
--- `vim.lsp.config` and nvim-lspconfig all understand; the custom `tach/*`
--- notifications are handled through its `handlers`, whichever way it starts.
local config = require("tach_ls.config")
local protocol = require("tach_ls.protocol")

local M = {}

--- Server settings changed during the session (:TachCoverageToggle turns collection on).
M.overrides = {}

local has_011 = vim.fn.has("nvim-0.11") == 1

--- client:request() on 0.11, client.request() before (0.11 deprecates the dot form).
function M.request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.notify(client, method, params)
  if has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

--- The settings section the server gets, with this session's overrides.
function M.settings(cfg)
  local settings = config.server_settings(cfg)
  local section = settings[protocol.SETTINGS_SECTION]
  for key, value in pairs(M.overrides) do
    section[key] = value
  end
  return settings
end

--- A plain LSP client configuration for tach-ls.
function M.lsp_config(cfg)
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  if cfg.capabilities then
    capabilities = vim.tbl_deep_extend("force", capabilities, cfg.capabilities)
  end
  return {
    name = protocol.CLIENT_NAME,
    cmd = cfg.cmd or config.default_cmd(),
    cmd_env = cfg.cmd_env,
    filetypes = cfg.filetypes,
    root_markers = cfg.root_markers,
    init_options = M.settings(cfg),
    capabilities = capabilities,
    handlers = require("tach_ls.handlers").handlers(),
    on_attach = cfg.on_attach,
  }
end

local warned_cmd = false

--- Start (or reuse) the client for a buffer of a project; returns the client id or nil.
function M.start(bufnr, cfg)
  if vim.bo[bufnr].buftype ~= "" or vim.api.nvim_buf_get_name(bufnr) == "" then
    return nil
  end
  -- A lone script outside any project is not worth a warm interpreter.
  local root = vim.fs.root(bufnr, cfg.root_markers)
  if not root then
    return nil
  end
  local lsp_cfg = M.lsp_config(cfg)
  if vim.fn.executable(lsp_cfg.cmd[1]) ~= 1 then
    if not warned_cmd then
      warned_cmd = true
      vim.notify(
        string.format(
          "tach-ls: cannot start the server: %q is not an executable. Install it (pip install tach-ls) or set cmd in require('tach_ls').setup({ cmd = { ... } })",
          lsp_cfg.cmd[1]
        ),
        vim.log.levels.ERROR
      )
    end
    return nil
  end
  lsp_cfg.root_dir = root
  lsp_cfg.filetypes, lsp_cfg.root_markers = nil, nil
  return vim.lsp.start(lsp_cfg, { bufnr = bufnr })
end

--- The tach-ls client for a buffer; from a buffer it does not manage, the only client.
--- @return table|nil client, string|nil why not
function M.for_buf(bufnr)
  local client = vim.lsp.get_clients({ bufnr = bufnr, name = protocol.CLIENT_NAME })[1]
  if client then
    return client
  end
  local all = vim.lsp.get_clients({ name = protocol.CLIENT_NAME })
  if #all == 1 then
    return all[1]
  end
  if #all == 0 then
    return nil, "tach-ls is not running: open a Python file of a project (a folder with pyproject.toml, pytest.ini, setup.cfg or .git)"
  end
  return nil, "tach-ls runs for several projects: run this from a buffer of the project you mean"
end

--- Run a `tach.*` command through workspace/executeCommand; `on_result(result)` on success.
function M.execute(bufnr, command, arguments, on_result)
  local client, why = M.for_buf(bufnr)
  if not client then
    vim.notify("tach-ls: " .. why, vim.log.levels.ERROR)
    return false
  end
  local params = { command = command, arguments = arguments }
  M.request(client, "workspace/executeCommand", params, function(err, result)
    if err then
      vim.notify(string.format("tach-ls: %s failed: %s", command, err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    if on_result then
      on_result(result)
    end
  end, bufnr)
  return true
end

--- Change server settings for this session and tell every tach-ls client.
function M.update_settings(cfg, changes)
  for key, value in pairs(changes) do
    M.overrides[key] = value
  end
  local settings = M.settings(cfg)
  for _, client in ipairs(vim.lsp.get_clients({ name = protocol.CLIENT_NAME })) do
    client.settings = settings
    M.notify(client, "workspace/didChangeConfiguration", { settings = settings })
  end
end

--- Is the server collecting coverage (the option, or turned on this session)?
function M.collecting(cfg)
  return M.settings(cfg)[protocol.SETTINGS_SECTION].coverage == true
end

return M
