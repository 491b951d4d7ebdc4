-- Argo CD health check for every kind of account.databricks-operator.dev: one script, which never
-- reads `kind`, installed under each kind's argocd-cm key.
--
-- This file is the only copy: the chart puts it under those keys, and hack/generate.sh writes it into
-- config/argocd/argocd-cm-patch.yaml. Argo CD runs it with gopher-lua (Lua 5.1 semantics) with the
-- object in the global `obj`; it returns `hs` with `status` and `message`.
--
-- Order of the rules:
--   1. the paused annotation is "true"                          -> Suspended
--   2. no status yet, or status/Ready older than the generation -> Progressing
--   3. Synced reason Paused                                      -> Suspended
--   4. a terminal reason on Ready or Synced                      -> Degraded
--   5. a Ready reason that is still working, or a workspace
--      PROVISIONING / NOT_PROVISIONED                            -> Progressing
--   6. Ready True, and with the health-requires-reachable
--      annotation "true" (workspaces) also Reachable True          -> Healthy
--      ... Reachable False with TlsError or Unauthorized          -> Degraded
--      ... Reachable not (yet) True otherwise                     -> Progressing
--   7. anything else                                             -> Progressing (Ready's message)

local PAUSED_ANNOTATION = "account.databricks-operator.dev/paused"
local REACHABLE_ANNOTATION = "account.databricks-operator.dev/health-requires-reachable"

-- Reachable reasons a person must act on (a retry alone does not fix them).
local REACHABLE_TERMINAL_REASONS = {
  TlsError = true,
  Unauthorized = true,
}

local PROGRESSING_REASONS = {
  Creating = true,
  Provisioning = true,
  Updating = true,
  UpdatePending = true,
  WaitingForDependency = true,
  CredentialValidationPending = true,
  Deleting = true,
  Cancelling = true,
}

local TERMINAL_REASONS = {
  ProvisioningFailed = true,
  ApiRejected = true,
  QuotaExceeded = true,
  ImmutableFieldChanged = true,
  UpdateNotApplied = true,
  NameConflict = true,
  AuthenticationFailed = true,
  HostNotAllowed = true,
  Banned = true,
  InvalidSpec = true,
  NotFound = true,
}

local PROGRESSING_WORKSPACE_STATUSES = {
  PROVISIONING = true,
  NOT_PROVISIONED = true,
}

local hs = {}

local function condition(status, type_)
  if status == nil or type(status.conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if type(c) == "table" and c.type == type_ then
      return c
    end
  end
  return nil
end

-- The condition's message, or something readable when it has none.
local function describe(c, fallback)
  if c ~= nil then
    if c.message ~= nil and c.message ~= "" then
      return c.message
    end
    if c.reason ~= nil and c.reason ~= "" then
      return c.type .. ": " .. c.reason
    end
  end
  return fallback
end

local metadata = obj.metadata or {}
local annotations = metadata.annotations or {}
local status = obj.status
local ready = condition(status, "Ready")
local synced = condition(status, "Synced")
local generation = metadata.generation

if annotations[PAUSED_ANNOTATION] == "true" then
  hs.status = "Suspended"
  hs.message = describe(synced, "Paused: the " .. PAUSED_ANNOTATION .. " annotation is \"true\"")
  return hs
end

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

if generation ~= nil then
  if status.observedGeneration == nil or status.observedGeneration < generation then
    hs.status = "Progressing"
    hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
    return hs
  end
  if ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
    hs.status = "Progressing"
    hs.message = "Waiting for the operator to update Ready for generation " .. tostring(generation)
    return hs
  end
end

if synced ~= nil and synced.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = describe(synced, "Paused")
  return hs
end

if ready ~= nil and TERMINAL_REASONS[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready, ready.reason)
  return hs
end
if synced ~= nil and TERMINAL_REASONS[synced.reason] then
  hs.status = "Degraded"
  hs.message = describe(synced, synced.reason)
  return hs
end

if ready ~= nil and PROGRESSING_REASONS[ready.reason] then
  hs.status = "Progressing"
  hs.message = describe(ready, ready.reason)
  return hs
end
if status.workspaceStatus ~= nil and PROGRESSING_WORKSPACE_STATUSES[status.workspaceStatus] then
  hs.status = "Progressing"
  local m = status.workspaceStatusMessage
  if m == nil or m == "" then
    m = "Workspace is " .. status.workspaceStatus
  end
  if ready ~= nil and ready.status ~= "True" then
    m = describe(ready, m)
  end
  hs.message = m
  return hs
end

if ready ~= nil and ready.status == "True" then
  if annotations[REACHABLE_ANNOTATION] == "true" then
    local reachable = condition(status, "Reachable")
    if reachable == nil then
      hs.status = "Progressing"
      hs.message = "Waiting for the operator to check that the workspace answers"
      return hs
    end
    if reachable.status ~= "True" then
      if REACHABLE_TERMINAL_REASONS[reachable.reason] then
        hs.status = "Degraded"
      else
        hs.status = "Progressing"
      end
      hs.message = describe(reachable, "Waiting for the workspace to answer")
      return hs
    end
    hs.status = "Healthy"
    hs.message = describe(reachable, "Reachable")
    return hs
  end
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, "Waiting for the Ready condition")
return hs
