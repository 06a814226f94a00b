// Package scheduler plans where vnodes go: initial placement of a vnode Slurm resumes, and
// rebalancing or evacuation moves while jobs run.
//
// Placement is a pipeline, built in NewPipeline:
//
//	hosts ──Snapshot──▶ static filters (reachable, state, stale KPIs, health) and static scorers
//	                    (load, energy, thermal, penalty), once per KPI refresh
//	request ─Decide──▶ dynamic filters, cheap first (cpu, memory, forecast, power, rack power,
//	                    features, anti-affinity) → dynamic scorers (power headroom, binpack,
//	                    affinity) → each score checked in [0, 100], weighted by the policy
//	                    (balanced, pack, energy, thermal) → the highest total; ties by a seeded
//	                    shuffle (seed in the Decision) or, with seed 0, by host name
//
// A dropped host is an answer with a reason code (ReasonNoCPU, ReasonStaleKPIs…), never an
// error. Every Decision can be explained: with explain traces it holds each host's verdict (the
// filter that dropped it, or each scorer's raw and normalised value and weight), which
// Decision.Table renders as the "why not hv3?" table and which round-trips through JSON (the
// hooks store it as jsonb). Pipeline.Place implements Placer for the resume hook; LeastLoaded is
// the simple placer that needs no KPIs.
//
// The hot path (Decide without explain, hotpath.go) makes three tight passes over the candidates:
// the cpu, memory and power filters fused without branches (the rarer filters then sweep what is
// left), the dynamic scorers fused into one total per host, and the selection. Filters and
// scorers are called on their concrete types so that they inline; it allocates nothing per host
// and formats nothing. TestGoldenDecisions holds it to the answers, bit for bit, of the staged
// pipeline it replaced.
//
// It only plans: it returns decisions and never calls libvirt, Slurm or the database. Executors
// in migrate/ and the server apply plans and own the safety limits.
package scheduler
