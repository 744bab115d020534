-- Argo CD health check for tunkeeper.io/TunDevice.
-- Install: argocd-cm, key resource.customizations.health.tunkeeper.io_TunDevice (chart README).
--
-- Reads the summary that the agent holding the status Lease writes over every selected node:
--   Healthy      Ready=True at the current generation (every selected node ready)
--   Degraded     Stalled=True (a node refused the device, a conflict, an apply failing for long)
--   Progressing  otherwise: no status yet, an older generation, or nodes still to report
-- The same moments kstatus (Flux) calls Current, Failed and InProgress.
-- Custom checks run without Lua's string and math libraries: only base and table are used here.
local hs = { status = "Progressing", message = "waiting for tunkeeper to report on the selected nodes" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.message = "waiting for the nodes to report generation " .. obj.metadata.generation
  return hs
end
local ready, reconciling, stalled
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Reconciling" then
    reconciling = c
  elseif c.type == "Stalled" then
    stalled = c
  end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = reconciling.message
elseif ready ~= nil then
  hs.message = ready.message
end
return hs
