package ingest

import (
	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/kpi"
)

// Batch is what one agent hands to the ingest path at a time: the samples of one or more
// collection cycles of one hypervisor and the health events they gave. A batch is delivered
// to PostgreSQL whole, in one transaction, exactly once: (Agent, Seq) identifies it, and a
// batch whose pair is already recorded is skipped as delivered.
type Batch struct {
	Host    string // the hypervisor's name as in the hypervisors table
	Agent   string // the agent instance (stable across restarts while its spool lives)
	Seq     uint64 // strictly increasing per Agent, from 1
	Samples []kpi.Sample
	Events  []health.Event
}
