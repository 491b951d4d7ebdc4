-- Tests of the Argo CD health check (charts/databricks-account-operator/files/health.lua) with
-- plain asserts, under Lua 5.1 (Argo CD's gopher-lua has 5.1 semantics).
--
--   lua5.1 tests/argocd/health_test.lua [path/to/health.lua [path/to/src/crd/common.rs]]
--
-- Every case is a distinct behaviour of the script: each reason of the operator's closed set
-- (read from src/crd/common.rs, so a new reason without a case fails here), each rule of the
-- order documented at the top of health.lua, and each fallback message. The script never reads
-- `kind` (Argo CD installs the same script for every kind), so the cases use one kind each rather
-- than repeating themselves per kind. Every run of the script also checks that it set no global.
--
-- Prints "N passed, 0 failed"; exits non-zero if any case fails.

local dir = string.match(arg[0], "^(.*)/[^/]*$") or "."
local script_path = arg[1] or (dir .. "/../../charts/databricks-account-operator/files/health.lua")
local reasons_path = arg[2] or (dir .. "/../../src/crd/common.rs")
local chunk, err = loadfile(script_path)
if chunk == nil then
  io.stderr:write("cannot load " .. script_path .. ": " .. tostring(err) .. "\n")
  os.exit(2)
end

local function cond(type_, status, reason, message, observed)
  return {
    type = type_, status = status, reason = reason, message = message,
    lastTransitionTime = "2026-01-01T00:00:00Z", observedGeneration = observed,
  }
end

-- An object at generation 3 whose status saw generation 3.
local function object(kind, conditions, extra_status, annotations)
  local status = { observedGeneration = 3, conditions = conditions }
  for k, v in pairs(extra_status or {}) do status[k] = v end
  return {
    apiVersion = "account.databricks-operator.dev/v1alpha1",
    kind = kind,
    metadata = { name = "x", namespace = "ns", generation = 3, annotations = annotations },
    spec = {},
    status = status,
  }
end

-- Runs the health check the way Argo CD does, with the object in the global `obj`, in a fresh
-- environment of its own, so that any global the script sets shows up in that environment
-- (Argo CD may reuse its Lua state between objects). Returns the result and the leaked names.
local function health(o)
  local env = setmetatable({ obj = o }, { __index = _G })
  setfenv(chunk, env)
  local hs = chunk()
  local leaked = {}
  for k in pairs(env) do
    if k ~= "obj" then table.insert(leaked, tostring(k)) end
  end
  table.sort(leaked)
  return hs, leaked
end

local passed, failed = 0, 0
local function check(name, fn)
  local ok, e = pcall(fn)
  if ok then
    passed = passed + 1
  else
    failed = failed + 1
    io.stderr:write("FAIL " .. name .. ": " .. tostring(e) .. "\n")
  end
end

local function case(name, o, want_status, want_message)
  check(name, function()
    local hs, leaked = health(o)
    assert(#leaked == 0, "the script set globals: " .. table.concat(leaked, ", "))
    assert(type(hs) == "table", "no table returned")
    assert(hs.status == want_status,
      "status: want " .. want_status .. ", got " .. tostring(hs.status) .. " (" .. tostring(hs.message) .. ")")
    assert(hs.message == want_message,
      "message: want \"" .. want_message .. "\", got \"" .. tostring(hs.message) .. "\"")
  end)
end

local SYNCED_OK = cond("Synced", "True", "Synced", "Last exchange with the API succeeded", 3)

-- 1. Every reason of the closed set on Ready (with Synced OK), and the outcome it gives; two
-- reasons also with Ready True, where the reason must win over the status.
local READY_REASONS = {
  { "Available", "True", "Healthy" },
  { "ObserveOnly", "True", "Healthy" },
  { "Creating", "False", "Progressing" },
  { "Provisioning", "False", "Progressing" },
  { "Updating", "False", "Progressing" },
  { "Updating", "True", "Progressing" },
  { "UpdatePending", "False", "Progressing" },
  { "WaitingForDependency", "False", "Progressing" },
  { "CredentialValidationPending", "False", "Progressing" },
  { "Deleting", "False", "Progressing" },
  { "Cancelling", "False", "Progressing" },
  { "InUse", "False", "Progressing" },
  { "ApiUnavailable", "False", "Progressing" },
  { "Synced", "False", "Progressing" },
  { "ProvisioningFailed", "False", "Degraded" },
  { "ApiRejected", "False", "Degraded" },
  { "QuotaExceeded", "False", "Degraded" },
  { "ImmutableFieldChanged", "False", "Degraded" },
  { "ImmutableFieldChanged", "True", "Degraded" },
  { "UpdateNotApplied", "False", "Degraded" },
  { "NameConflict", "False", "Degraded" },
  { "AuthenticationFailed", "False", "Degraded" },
  { "HostNotAllowed", "False", "Degraded" },
  { "Banned", "False", "Degraded" },
  { "InvalidSpec", "False", "Degraded" },
  { "NotFound", "False", "Degraded" },
  { "Paused", "False", "Progressing" }, -- Paused counts on Synced (below), not on Ready
  -- The Reachable reasons belong to their own condition (section 7); on Ready they mean nothing.
  { "Reachable", "False", "Progressing" },
  { "DnsPending", "False", "Progressing" },
  { "TlsError", "False", "Progressing" },
  { "Unauthorized", "False", "Progressing" },
  { "WorkspaceUnavailable", "False", "Progressing" },
}
for _, r in ipairs(READY_REASONS) do
  local reason, st, want = r[1], r[2], r[3]
  local msg = "Ready " .. reason .. " message"
  case("Ready=" .. st .. " " .. reason,
    object("DatabricksNetwork", { cond("Ready", st, reason, msg, 3), SYNCED_OK }), want, msg)
end

check("every reason of src/crd/common.rs has a case above", function()
  local f = assert(io.open(reasons_path, "r"))
  local src = f:read("*a")
  f:close()
  local body = assert(string.match(src, "pub enum Reason {(.-)\n}"), "no `pub enum Reason` in " .. reasons_path)
  local covered = {}
  for _, r in ipairs(READY_REASONS) do covered[r[1]] = true end
  local declared, missing = 0, {}
  for line in string.gmatch(body, "[^\n]+") do
    local variant = string.match(line, "^%s*(%u%w*),%s*$")
    if variant then
      declared = declared + 1
      if not covered[variant] then table.insert(missing, variant) end
    end
  end
  assert(declared > 0, "no variants found in `pub enum Reason`")
  assert(#missing == 0, "reasons without a case: " .. table.concat(missing, ", "))
end)

-- 2. Synced: a terminal reason degrades even a Ready object; Ready's terminal reason is reported
-- first; a transient one does not degrade; Paused suspends whatever Ready says.
case("Synced terminal with Ready True", object("DatabricksNetwork",
  { cond("Ready", "True", "Available", "ok", 3), cond("Synced", "False", "ApiRejected", "Synced: fix the spec", 3) }),
  "Degraded", "Synced: fix the spec")
case("Ready and Synced terminal: Ready's message", object("DatabricksNetwork",
  { cond("Ready", "False", "NotFound", "Ready: gone", 3), cond("Synced", "False", "ApiRejected", "Synced: refused", 3) }),
  "Degraded", "Ready: gone")
case("Synced UpdateNotApplied degrades a RUNNING workspace", object("DatabricksWorkspace",
  { cond("Ready", "True", "Available", "ok", 3), cond("Synced", "False", "UpdateNotApplied", "not applied", 3) }),
  "Degraded", "not applied")
case("Synced Updating with Ready True stays Healthy", object("DatabricksWorkspace",
  { cond("Ready", "True", "Available", "ready", 3), cond("Synced", "False", "Updating", "tags pending", 3) }),
  "Healthy", "ready")
case("Synced ApiUnavailable with Ready True stays Healthy", object("DatabricksCredential",
  { cond("Ready", "True", "Available", "ready", 3), cond("Synced", "False", "ApiUnavailable", "API down", 3) }),
  "Healthy", "ready")
local paused_msg = "Paused by the account.databricks-operator.dev/paused annotation"
case("Synced Paused with Ready True", object("DatabricksWorkspace",
  { cond("Ready", "True", "Available", "ok", 3), cond("Synced", "False", "Paused", paused_msg, 3) }),
  "Suspended", paused_msg)
case("Synced Paused over a terminal Ready", object("DatabricksWorkspace",
  { cond("Ready", "False", "ApiRejected", "rejected", 3), cond("Synced", "False", "Paused", paused_msg, 3) }),
  "Suspended", paused_msg)

-- 3. The paused annotation, before anything else.
case("paused annotation, no status", {
  kind = "DatabricksAccount", metadata = { name = "a", generation = 1,
  annotations = { ["account.databricks-operator.dev/paused"] = "true" } } },
  "Suspended", "Paused: the account.databricks-operator.dev/paused annotation is \"true\"")
case("paused annotation with Synced's message", object("DatabricksKeyConfig",
  { cond("Ready", "False", "ApiRejected", "rejected", 3), cond("Synced", "False", "Paused", paused_msg, 3) }, nil,
  { ["account.databricks-operator.dev/paused"] = "true" }), "Suspended", paused_msg)
case("paused annotation false is ignored", object("DatabricksKeyConfig",
  { cond("Ready", "True", "Available", "ok", 3) }, nil,
  { ["account.databricks-operator.dev/paused"] = "false" }), "Healthy", "ok")

-- 4. No status, or a status older than the spec.
case("no status", { kind = "DatabricksNetwork", metadata = { name = "n", generation = 1 } },
  "Progressing", "Waiting for the operator to report a status")
case("status without observedGeneration", { kind = "DatabricksNetwork",
  metadata = { name = "n", generation = 1 }, status = {} },
  "Progressing", "Waiting for the operator to observe generation 1")
local stale = object("DatabricksStorageConfig", { cond("Ready", "False", "ApiRejected", "bad", 3) })
stale.metadata.generation = 4
case("observedGeneration behind: Progressing even over a terminal reason", stale, "Progressing",
  "Waiting for the operator to observe generation 4")
case("Ready condition behind generation",
  object("DatabricksStorageConfig", { cond("Ready", "True", "Available", "ok", 2) }),
  "Progressing", "Waiting for the operator to update Ready for generation 3")
local no_gen = object("DatabricksStorageConfig", { cond("Ready", "True", "Available", "ok") })
no_gen.metadata.generation = nil
case("no generation at all", no_gen, "Healthy", "ok")

-- 5. Conditions missing or malformed, and the fallback messages.
case("no conditions yet", object("DatabricksVpcEndpoint", {}), "Progressing", "Waiting for the Ready condition")
case("conditions not a list", object("DatabricksVpcEndpoint", "Ready"),
  "Progressing", "Waiting for the Ready condition")
case("a malformed entry among the conditions is skipped", object("DatabricksVpcEndpoint",
  { "junk", cond("Ready", "True", "Available", "ok", 3) }), "Healthy", "ok")
case("Ready Unknown without message", object("DatabricksVpcEndpoint",
  { { type = "Ready", status = "Unknown", reason = "Creating" } }), "Progressing", "Ready: Creating")
case("Ready False without reason or message", object("DatabricksVpcEndpoint",
  { { type = "Ready", status = "False" } }), "Progressing", "Waiting for the Ready condition")

-- 6. Workspace status: in progress whatever a stale Ready says, with the most useful message.
for _, ws in ipairs({ "PROVISIONING", "NOT_PROVISIONED" }) do
  case("workspace " .. ws .. " with a stale Ready True", object("DatabricksWorkspace",
    { cond("Ready", "True", "Available", "ok", 3), SYNCED_OK },
    { workspaceStatus = ws, workspaceStatusMessage = "Workspace resources are being set up." }),
    "Progressing", "Workspace resources are being set up.")
end
case("workspace PROVISIONING without messages", object("DatabricksWorkspace", {}, { workspaceStatus = "PROVISIONING" }),
  "Progressing", "Workspace is PROVISIONING")
case("workspace PROVISIONING with Ready False: Ready's message", object("DatabricksWorkspace",
  { cond("Ready", "False", "ApiUnavailable", "cannot reach the Account API", 3), SYNCED_OK },
  { workspaceStatus = "PROVISIONING", workspaceStatusMessage = "Workspace resources are being set up." }),
  "Progressing", "cannot reach the Account API")
case("workspace RUNNING", object("DatabricksWorkspace",
  { cond("Ready", "True", "Available", "Workspace is running at https://acme.cloud.databricks.com", 3), SYNCED_OK },
  { workspaceStatus = "RUNNING", workspaceUrl = "https://acme.cloud.databricks.com" }),
  "Healthy", "Workspace is running at https://acme.cloud.databricks.com")

-- 7. The Reachable condition counts only when the object opts in with the annotation.
local OPT_IN = { ["account.databricks-operator.dev/health-requires-reachable"] = "true" }
local READY = cond("Ready", "True", "Available", "workspace is RUNNING", 3)
local function reachable(st, reason, msg)
  return cond("Reachable", st, reason, msg, 3)
end
case("Reachable False without the annotation stays Healthy", object("DatabricksWorkspace",
  { READY, SYNCED_OK, reachable("False", "DnsPending", "does not resolve yet") },
  { workspaceStatus = "RUNNING" }), "Healthy", "workspace is RUNNING")
case("annotation false is ignored", object("DatabricksWorkspace",
  { READY, SYNCED_OK, reachable("False", "Unauthorized", "refused") },
  { workspaceStatus = "RUNNING" }, { ["account.databricks-operator.dev/health-requires-reachable"] = "false" }),
  "Healthy", "workspace is RUNNING")
case("opted in, not checked yet", object("DatabricksWorkspace", { READY, SYNCED_OK },
  { workspaceStatus = "RUNNING" }, OPT_IN),
  "Progressing", "Waiting for the operator to check that the workspace answers")
for _, r in ipairs({
  { "DnsPending", "Progressing" },
  { "WorkspaceUnavailable", "Progressing" },
  { "TlsError", "Degraded" },
  { "Unauthorized", "Degraded" },
}) do
  case("opted in, Reachable False " .. r[1], object("DatabricksWorkspace",
    { READY, SYNCED_OK, reachable("False", r[1], "Reachable " .. r[1] .. " message") },
    { workspaceStatus = "RUNNING" }, OPT_IN), r[2], "Reachable " .. r[1] .. " message")
end
case("opted in, Reachable False without a message", object("DatabricksWorkspace",
  { READY, SYNCED_OK, { type = "Reachable", status = "False" } }, { workspaceStatus = "RUNNING" }, OPT_IN),
  "Progressing", "Waiting for the workspace to answer")
case("opted in and reachable", object("DatabricksWorkspace",
  { READY, SYNCED_OK, reachable("True", "Reachable", "https://acme.cloud.databricks.com answers") },
  { workspaceStatus = "RUNNING" }, OPT_IN), "Healthy", "https://acme.cloud.databricks.com answers")
case("opted in: a terminal Ready still wins", object("DatabricksWorkspace",
  { cond("Ready", "False", "Banned", "banned", 3), SYNCED_OK, reachable("True", "Reachable", "ok") },
  { workspaceStatus = "BANNED" }, OPT_IN), "Degraded", "banned")
case("opted in: provisioning still wins", object("DatabricksWorkspace",
  { READY, SYNCED_OK, reachable("True", "Reachable", "ok") },
  { workspaceStatus = "PROVISIONING", workspaceStatusMessage = "updating" }, OPT_IN), "Progressing", "updating")

print(passed .. " passed, " .. failed .. " failed")
if failed > 0 then os.exit(1) end
