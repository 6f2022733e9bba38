--- Small helpers shared by the modules: URIs to file names, buffers by file name.
local M = {}

--- A normalized file name for a `file://` URI (the key of the plugin's per-file state).
function M.fname(uri)
  if type(uri) ~= "string" or uri == "" then
    return nil
  end
  return vim.fs.normalize(vim.uri_to_fname(uri))
end

--- The file name of a buffer ("" for buffers without one).
function M.buf_fname(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  return name ~= "" and vim.fs.normalize(name) or ""
end

--- The loaded buffer showing `fname`, or nil. (`bufnr()` would treat the name as a pattern.)
function M.buf_for(fname)
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and M.buf_fname(bufnr) == fname then
      return bufnr
    end
  end
  return nil
end

--- "3 ms", "<1 ms", "1.2 s": as the server's lenses write durations.
function M.duration(ms)
  if type(ms) ~= "number" then
    return ""
  end
  if ms < 1 then
    return "<1 ms"
  end
  if ms < 1000 then
    return string.format("%.0f ms", ms)
  end
  return string.format("%.1f s", ms / 1000)
end

--- Is `fname` inside the directory `dir` (both normalized)?
function M.is_under(fname, dir)
  if not fname or not dir then
    return false
  end
  dir = dir:gsub("/$", "")
  return fname == dir or fname:sub(1, #dir + 1) == dir .. "/"
end

return M
