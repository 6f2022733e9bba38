--- :checkhealth tach_ls: Neovim's version, the server, the project interpreter, the zygote's state.
local M = {}

local PROBE_MS = 10000

--- Run a short command; (ok, first line of stdout or stderr).
local function probe(cmd, env)
  local ok, proc = pcall(vim.system, cmd, { text = true, env = env })
  if not ok then
    return false, tostring(proc)
  end
  local res = proc:wait(PROBE_MS)
  local text = vim.trim((res.code == 0 and res.stdout or res.stderr) or "")
  if res.code ~= 0 then
    local lines = vim.split(text, "\n")
    text = lines[#lines] ~= "" and lines[#lines] or ("exit code " .. tostring(res.code))
  end
  return res.code == 0, text
end

local function check_nvim(health)
  health.start("tach-ls: Neovim")
  local v = vim.version()
  local why = require("tach_ls").unsupported()
  if why then
    health.error(why)
  else
    health.ok(string.format("Neovim %d.%d.%d", v.major, v.minor, v.patch))
  end
end

local function check_server(health, cfg)
  health.start("tach-ls: server")
  local cmd = cfg.cmd or require("tach_ls.config").default_cmd()
  local exe = vim.fn.exepath(cmd[1])
  if exe == "" then
    health.error(string.format("server command not found: %s", table.concat(cmd, " ")), {
      "pip install tach-ls (it installs the `tach-ls` script)",
      "or set cmd in require('tach_ls').setup({ cmd = { '/path/to/python', '-m', 'tach_ls' } })",
    })
    return
  end
  health.ok(string.format("command: %s (%s)", table.concat(cmd, " "), exe))
  if cmd[2] == "-m" then
    local ok, out = probe({ exe, "-c", "import tach_ls; print(tach_ls.__version__)" }, cfg.cmd_env)
    if ok then
      health.ok("tach_ls " .. out .. " imports in that interpreter")
    else
      health.error(exe .. " cannot import tach_ls: " .. out, { exe .. " -m pip install tach-ls" })
    end
  end
end

local function check_python(health, cfg, roots, server_cmd)
  health.start("tach-ls: project interpreter")
  local candidates = {}
  if cfg.python then
    candidates = { cfg.python }
  else
    health.info("python is not set: the server uses $VIRTUAL_ENV, then .venv/ or venv/ in the project, then its own interpreter")
    if vim.env.VIRTUAL_ENV then
      table.insert(candidates, vim.env.VIRTUAL_ENV .. "/bin/python")
    end
    for _, root in ipairs(roots) do
      for _, venv in ipairs({ ".venv", "venv" }) do
        if vim.fn.executable(root .. "/" .. venv .. "/bin/python") == 1 then
          table.insert(candidates, root .. "/" .. venv .. "/bin/python")
        end
      end
    end
    if #candidates == 0 and server_cmd[2] == "-m" then
      table.insert(candidates, server_cmd[1]) -- the server's own interpreter
    end
  end
  for _, python in ipairs(candidates) do
    local exe = vim.fn.exepath(python)
    if exe == "" then
      health.error("interpreter not found: " .. python, { "set python in setup() to the project's interpreter" })
    else
      local ok, out = probe({ exe, "-c", "import sys, pytest; print(sys.version.split()[0], 'with pytest', pytest.__version__)" })
      if ok then
        health.ok(string.format("%s: Python %s", exe, out))
      else
        health.error(string.format("%s cannot import pytest: %s", exe, out), { exe .. " -m pip install pytest" })
      end
    end
  end
end

local function check_clients(health)
  local state = require("tach_ls.state")
  local util = require("tach_ls.util")
  health.start("tach-ls: running clients")
  local clients = vim.lsp.get_clients({ name = require("tach_ls.protocol").CLIENT_NAME })
  if #clients == 0 then
    health.info("no tach-ls client is running: open a Python file of a project (pyproject.toml, pytest.ini, setup.cfg or .git)")
  end
  for _, client in ipairs(clients) do
    local root = client.root_dir and vim.fs.normalize(client.root_dir) or "?"
    health.ok(string.format("client %d for %s", client.id, root))
    local status = state.status[root]
    if not status then
      health.info("zygote: no tach/status received yet")
    else
      local text = string.format("zygote: %s%s%s", status.state,
        (status.layer or "") ~= "" and (" (layer " .. status.layer .. ")") or "",
        (status.detail or "") ~= "" and (": " .. status.detail) or "")
      if status.state == "ready" then
        health.ok(text)
      elseif status.state == "failed" then
        health.error(text, { "see :LspLog, and the interpreter section above" })
      else
        health.info(text)
      end
    end
    local files = 0
    for fname, tree in pairs(state.trees) do
      if util.is_under(fname, root) and #require("tach_ls.tree").leaves(tree) > 0 then
        files = files + 1
      end
    end
    health.info(string.format("%d test files known; %d tach/coverage notifications so far", files, state.coverage_seen))
  end
end

function M.check()
  local health = vim.health
  local cfg = require("tach_ls.config").get()
  check_nvim(health)
  check_server(health, cfg)
  local roots = {}
  for _, client in ipairs(vim.lsp.get_clients({ name = require("tach_ls.protocol").CLIENT_NAME })) do
    if client.root_dir then
      table.insert(roots, client.root_dir)
    end
  end
  check_python(health, cfg, roots, cfg.cmd or require("tach_ls.config").default_cmd())
  check_clients(health)
end

return M
