-- Argo CD health check for wharf.dev/App (resource.customizations.health.wharf.dev_App).
-- Reads the kstatus-style conditions the operator writes (Ready, Reconciling, Stalled, ...) and the
-- observedGeneration that says which spec they describe. Written for Argo CD's Lua 5.1 (gopher-lua); the unit
-- test runs it with lua5.4, so it uses only what both have.
--
--   spec change not yet observed            -> Progressing (the conditions describe an older spec)
--   Stalled=True                            -> Degraded    (cannot progress without someone changing something)
--   Ready=False with a permanent reason     -> Degraded    (bad reference, image pull failure, crash loop, quota, ...)
--   Reconciling=True                        -> Progressing (rolling out, or waiting for a node with room)
--   Ready=True, reason Stopped              -> Suspended   (state: STOPPED runs zero instances on purpose)
--   Ready=True                              -> Healthy
--   anything else (Starting, RegistryUnavailable, no status yet) -> Progressing
-- The message is the Ready condition's (the Stalled one's when only that explains).

-- Ready reasons that will not clear on their own: each needs the App, its Secret, the image or the cluster
-- admin's settings to change. RegistryUnavailable and RateLimited are absent on purpose: they recover when the
-- registry does (S14). So are Unschedulable (nodes may be added, by a cluster autoscaler too; a rollout that never
-- finds room passes its progress deadline and the App turns Stalled) and InstancesNotCreated (the ReplicaSet
-- controller retries a refusal that clears by itself).
local permanent = {
  ImagePullFailed = true,
  ImageNotFound = true,
  ImagePullUnauthorized = true,
  InvalidImageName = true,
  CreateContainerConfigError = true,
  CrashLoopBackOff = true,
  InvalidReference = true,
  Unauthorized = true,
  Denied = true,
  UnsupportedRegistry = true,
  CredentialsMissing = true,
  InvalidSpec = true,
  NoStartCommand = true,
  RootUserRefused = true,
  InstancesForbidden = true,
  ProgressDeadlineExceeded = true,
}

local hs = { status = "Progressing", message = "Waiting for the wharf operator to report status" }

if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local conditions = {}
for _, c in ipairs(obj.status.conditions) do
  if c.type ~= nil then
    conditions[c.type] = c
  end
end

local ready = conditions["Ready"]
local stalled = conditions["Stalled"]
local reconciling = conditions["Reconciling"]

local function text(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil then
    return c.reason
  end
  return fallback
end

-- Which generation the conditions describe: the Ready condition's own observedGeneration, else the status'.
local generation = obj.metadata.generation
local observed = nil
if ready ~= nil and ready.observedGeneration ~= nil then
  observed = ready.observedGeneration
elseif obj.status.observedGeneration ~= nil then
  observed = obj.status.observedGeneration
end
if generation ~= nil and observed ~= generation then
  hs.message = "Waiting for the wharf operator to observe generation " .. tostring(generation)
  return hs
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  if ready ~= nil and ready.status ~= "True" and ready.message ~= nil and ready.message ~= "" then
    hs.message = ready.message
  else
    hs.message = text(stalled, "Stalled")
  end
  return hs
end

if ready ~= nil and ready.status == "False" and ready.reason ~= nil and permanent[ready.reason] then
  hs.status = "Degraded"
  hs.message = text(ready, ready.reason)
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.message = text(ready, text(reconciling, "Reconciling"))
  return hs
end

if ready ~= nil and ready.status == "True" and ready.reason == "Stopped" then
  hs.status = "Suspended"
  hs.message = text(ready, "Stopped")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready, "Ready")
  return hs
end

hs.message = text(ready, hs.message)
return hs
