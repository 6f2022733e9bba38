--- Highlight groups, linked by default so a colorscheme or the user can restyle them.
local M = {}

M.LINKS = {
  TachLsPassed = "DiagnosticOk",
  TachLsFailed = "DiagnosticError",
  TachLsSkipped = "DiagnosticWarn",
  TachLsRunning = "DiagnosticInfo",
  TachLsCovered = "DiagnosticOk",
  TachLsMissed = "DiagnosticError",
}

--- Define the links (`default`: a group the user or colorscheme set is left alone).
function M.define()
  for group, target in pairs(M.LINKS) do
    vim.api.nvim_set_hl(0, group, { link = target, default = true })
  end
end

return M
