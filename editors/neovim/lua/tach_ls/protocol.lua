--- tach-ls's custom LSP vocabulary, mirroring tach_ls/protocol.py: keep them in step.
---
--- Lines and characters on the wire are LSP's: 0-based, columns in UTF-16 units.
local M = {}

-- notifications, server -> client
M.TESTS_CHANGED = "tach/testsChanged"
M.RUN_STARTED = "tach/runStarted"
M.TEST_RESULT = "tach/testResult"
M.RUN_FINISHED = "tach/runFinished"
M.COVERAGE = "tach/coverage"
M.STATUS = "tach/status"

-- commands (workspace/executeCommand)
M.CMD_RUN_TESTS = "tach.runTests"
M.CMD_RUN_ALL = "tach.runAll"
M.CMD_RUN_AFFECTED = "tach.runAffected"
M.CMD_CANCEL = "tach.cancel"
M.CMD_DEBUG_TEST = "tach.debugTest"
M.COMMANDS = { M.CMD_RUN_TESTS, M.CMD_RUN_ALL, M.CMD_RUN_AFFECTED, M.CMD_CANCEL, M.CMD_DEBUG_TEST }

--- The notifications the plugin handles, in the order of protocol.py's registry.
M.NOTIFICATIONS = { M.TESTS_CHANGED, M.RUN_STARTED, M.TEST_RESULT, M.RUN_FINISHED, M.COVERAGE, M.STATUS }

--- `tach-ls` settings section: the key of initializationOptions and didChangeConfiguration.
M.SETTINGS_SECTION = "tach-ls"

--- Test statuses (`tach/testResult` status), and which of them are failures.
M.STATUSES = { "passed", "failed", "skipped", "xfailed", "xpassed", "error", "crashed", "timeout" }
M.FAILURES = { failed = true, error = true, crashed = true, timeout = true }

--- Engine (zygote) states of `tach/status`.
M.STATES = { "starting", "ready", "rebuilding", "failed", "stopped" }

--- The client's name: `vim.lsp.start` reuses one client per (name, root).
M.CLIENT_NAME = "tach_ls"

return M
