-- Tests of the Argo CD health check (charts/databricks-account-operator/files/health.lua) with
-- plain asserts, under Lua 5.1 (Argo CD's gopher-lua has 5.1 semantics).
--
--   lua5.1 tests/argocd/health_test.lua [path/to/health.lua]
--
-- Prints "N passed, 0 failed"; exits non-zero if any case fails.

local script_path = arg[1]
if script_path == nil then
  local dir = string.match(arg[0], "^(.*)/[^/]*$") or "."
  script_path = dir .. "/../../charts/databricks-account-operator/files/health.lua"
end
local chunk, err = loadfile(script_path)
if chunk == nil then
  io.stderr:write("cannot load " .. script_path .. ": " .. tostring(err) .. "\n")
  os.exit(2)
end

local KINDS = {
  "DatabricksAccount", "DatabricksCredential", "DatabricksStorageConfig", "DatabricksKeyConfig",
  "DatabricksNetwork", "DatabricksVpcEndpoint", "DatabricksPrivateAccessSettings", "DatabricksWorkspace",
}

local function cond(type_, status, reason, message, observed)
  return {
    type = type_, status = status, reason = reason, message = message,
    lastTransitionTime = "2026-01-01T00:00:00Z", observedGeneration = observed,
  }
end

-- An object of `kind` at generation 3 whose status saw generation 3.
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

-- Runs the health check the way Argo CD does: the object in the global `obj`.
local function health(o)
  obj = o
  local hs = chunk()
  obj = nil
  return hs
end

local passed, failed = 0, 0
local function case(name, o, want_status, want_message)
  local ok, e = pcall(function()
    local hs = health(o)
    assert(type(hs) == "table", "no table returned")
    assert(hs.status == want_status,
      "status: want " .. want_status .. ", got " .. tostring(hs.status) .. " (" .. tostring(hs.message) .. ")")
    assert(type(hs.message) == "string" and hs.message ~= "", "empty message")
    if want_message ~= nil then
      assert(hs.message == want_message,
        "message: want \"" .. want_message .. "\", got \"" .. tostring(hs.message) .. "\"")
    end
  end)
  if ok then
    passed = passed + 1
  else
    failed = failed + 1
    io.stderr:write("FAIL " .. name .. ": " .. tostring(e) .. "\n")
  end
end

local SYNCED_OK = cond("Synced", "True", "Synced", "Last exchange with the API succeeded", 3)

-- Every reason of src/crd/common.rs on Ready (with Synced OK), and the outcome it gives.
local READY_REASONS = {
  { "Available", "True", "Healthy" },
  { "ObserveOnly", "True", "Healthy" },
  { "Creating", "False", "Progressing" },
  { "Provisioning", "False", "Progressing" },
  { "Updating", "False", "Progressing" },
  { "Updating", "True", "Progressing" },
  { "WaitingForDependency", "False", "Progressing" },
  { "CredentialValidationPending", "False", "Progressing" },
  { "Deleting", "False", "Progressing" },
  { "Cancelling", "False", "Progressing" },
  { "InUse", "False", "Progressing" },
  { "ApiUnavailable", "False", "Progressing" },
  { "Synced", "False", "Progressing" },
  { "ProvisioningFailed", "False", "Degraded" },
  { "ApiRejected", "False", "Degraded" },
  { "ImmutableFieldChanged", "False", "Degraded" },
  { "ImmutableFieldChanged", "True", "Degraded" },
  { "NameConflict", "False", "Degraded" },
  { "AuthenticationFailed", "False", "Degraded" },
  { "Banned", "False", "Degraded" },
  { "InvalidSpec", "False", "Degraded" },
  { "NotFound", "False", "Degraded" },
  { "Paused", "False", "Progressing" }, -- Paused counts on Synced (below), not on Ready
}

for _, kind in ipairs(KINDS) do
  for _, r in ipairs(READY_REASONS) do
    local reason, st, want = r[1], r[2], r[3]
    local msg = kind .. " Ready " .. reason .. " message"
    case(kind .. " Ready=" .. st .. " " .. reason,
      object(kind, { cond("Ready", st, reason, msg, 3), SYNCED_OK }), want, msg)
  end
end

-- Terminal reasons on Synced while Ready is still True: Degraded with Synced's message.
local TERMINAL = { "ProvisioningFailed", "ApiRejected", "ImmutableFieldChanged", "NameConflict",
  "AuthenticationFailed", "Banned", "InvalidSpec", "NotFound" }
for _, reason in ipairs(TERMINAL) do
  local msg = "Synced " .. reason .. ": fix the spec"
  case("Synced " .. reason .. " with Ready True",
    object("DatabricksNetwork", { cond("Ready", "True", "Available", "ok", 3), cond("Synced", "False", reason, msg, 3) }),
    "Degraded", msg)
end

-- Transient Synced reasons do not degrade a Ready object.
for _, reason in ipairs({ "ApiUnavailable", "Synced", "ObserveOnly", "InUse" }) do
  case("Synced " .. reason .. " with Ready True",
    object("DatabricksCredential", { cond("Ready", "True", "Available", "ready", 3), cond("Synced", "False", reason, "s", 3) }),
    "Healthy", "ready")
end

-- Paused: Synced reason Paused, or the annotation.
local paused_msg = "Paused by the account.databricks-operator.dev/paused annotation"
case("Synced Paused", object("DatabricksWorkspace",
  { cond("Ready", "True", "Available", "ok", 3), cond("Synced", "False", "Paused", paused_msg, 3) }), "Suspended", paused_msg)
case("Synced Paused with Ready False", object("DatabricksWorkspace",
  { cond("Ready", "False", "Creating", "c", 3), cond("Synced", "False", "Paused", paused_msg, 3) }), "Suspended", paused_msg)
case("paused annotation, no status", {
  kind = "DatabricksAccount", metadata = { name = "a", generation = 1,
  annotations = { ["account.databricks-operator.dev/paused"] = "true" } } }, "Suspended")
case("paused annotation over a terminal reason", object("DatabricksKeyConfig",
  { cond("Ready", "False", "ApiRejected", "rejected", 3) }, nil,
  { ["account.databricks-operator.dev/paused"] = "true" }), "Suspended")
case("paused annotation false is ignored", object("DatabricksKeyConfig",
  { cond("Ready", "True", "Available", "ok", 3) }, nil,
  { ["account.databricks-operator.dev/paused"] = "false" }), "Healthy", "ok")

-- No status, stale status.
case("no status", { kind = "DatabricksNetwork", metadata = { name = "n", generation = 1 } },
  "Progressing", "Waiting for the operator to report a status")
case("no metadata.annotations and empty status", { kind = "DatabricksNetwork",
  metadata = { name = "n", generation = 1 }, status = {} }, "Progressing")
local stale = object("DatabricksStorageConfig", { cond("Ready", "True", "Available", "ok", 2) })
stale.metadata.generation = 4
case("observedGeneration behind generation", stale, "Progressing",
  "Waiting for the operator to observe generation 4")
local stale_failed = object("DatabricksStorageConfig", { cond("Ready", "False", "ApiRejected", "bad", 3) })
stale_failed.metadata.generation = 4
case("stale terminal reason is Progressing, not Degraded", stale_failed, "Progressing")
local stale_ready = object("DatabricksStorageConfig", { cond("Ready", "True", "Available", "ok", 2) })
case("Ready condition behind generation", stale_ready, "Progressing")
local no_gen = object("DatabricksStorageConfig", { cond("Ready", "True", "Available", "ok") })
no_gen.metadata.generation = nil
case("no generation at all", no_gen, "Healthy", "ok")
case("no conditions yet", object("DatabricksVpcEndpoint", {}), "Progressing", "Waiting for the Ready condition")
case("Ready Unknown without message", object("DatabricksVpcEndpoint",
  { { type = "Ready", status = "Unknown", reason = "Creating" } }), "Progressing", "Ready: Creating")

-- Workspace status.
for _, ws in ipairs({ "PROVISIONING", "NOT_PROVISIONED" }) do
  case("workspace " .. ws .. " Ready False", object("DatabricksWorkspace",
    { cond("Ready", "False", "Provisioning", "Workspace is being provisioned", 3), SYNCED_OK },
    { workspaceStatus = ws, workspaceStatusMessage = "Workspace resources are being set up." }),
    "Progressing", "Workspace is being provisioned")
  case("workspace " .. ws .. " with a stale Ready True", object("DatabricksWorkspace",
    { cond("Ready", "True", "Available", "ok", 3), SYNCED_OK },
    { workspaceStatus = ws, workspaceStatusMessage = "Workspace resources are being set up." }),
    "Progressing", "Workspace resources are being set up.")
end
case("workspace PROVISIONING without messages", object("DatabricksWorkspace", {}, { workspaceStatus = "PROVISIONING" }),
  "Progressing", "Workspace is PROVISIONING")
case("workspace RUNNING", object("DatabricksWorkspace",
  { cond("Ready", "True", "Available", "Workspace is running at https://acme.cloud.databricks.com", 3), SYNCED_OK },
  { workspaceStatus = "RUNNING", workspaceUrl = "https://acme.cloud.databricks.com" }),
  "Healthy", "Workspace is running at https://acme.cloud.databricks.com")
case("workspace FAILED", object("DatabricksWorkspace",
  { cond("Ready", "False", "ProvisioningFailed", "MALFORMED_REQUEST: subnet too small", 3), SYNCED_OK },
  { workspaceStatus = "FAILED" }), "Degraded", "MALFORMED_REQUEST: subnet too small")
case("workspace BANNED", object("DatabricksWorkspace",
  { cond("Ready", "False", "Banned", "banned", 3), SYNCED_OK }, { workspaceStatus = "BANNED" }), "Degraded", "banned")
case("workspace CANCELLING", object("DatabricksWorkspace",
  { cond("Ready", "False", "Cancelling", "cancelling", 3), SYNCED_OK }, { workspaceStatus = "CANCELLING" }),
  "Progressing", "cancelling")

-- The script must not leak globals besides reading `obj` (Argo CD reuses the Lua state per call).
local before = {}
for k in pairs(_G) do before[k] = true end
health(object("DatabricksAccount", { cond("Ready", "True", "Available", "ok", 3) }))
local leaked = {}
for k in pairs(_G) do if not before[k] then table.insert(leaked, k) end end
case("no leaked globals", object("DatabricksAccount", { cond("Ready", "True", "Available", "ok", 3) }),
  #leaked == 0 and "Healthy" or ("leaked: " .. table.concat(leaked, ",")))

print(passed .. " passed, " .. failed .. " failed")
if failed > 0 then os.exit(1) end
