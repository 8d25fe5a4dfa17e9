// Argo CD's Lua interpreter (gopher-lua, the version Argo CD v3.5.7 and v3.6.1 pin) running a health check the way
// Argo CD v3.5.7 does: tests/unit/test_argocd_health.py. Tests only.
module wharf.dev/tests/cluster/argocd-health

go 1.26.0

require (
	github.com/yuin/gopher-lua v1.1.2
	layeh.com/gopher-json v0.0.0-20190114024228-97fed8db8427
)
