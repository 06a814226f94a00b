package server

import (
	"context"
	"time"
)

// Probe is what a hypervisor's libvirt said when asked.
type Probe struct {
	Name      string
	CPUs      int
	MemoryMiB int64
	Err       error // unreachable: it cannot take a VM whatever its KPIs say
}

// Prober asks every hypervisor's libvirt for its capacity.
type Prober interface {
	Probe(ctx context.Context) []Probe
}

// DefaultProbeInterval is how often the server asks libvirt.
const DefaultProbeInterval = 30 * time.Second

// probe asks the prober, records capacities and remembers the unreachable hosts for the view.
func (s *Server) probe(ctx context.Context) {
	if s.prober == nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	unreachable := map[string]bool{}
	for _, p := range s.prober.Probe(pctx) {
		if p.Err != nil {
			unreachable[p.Name] = true
			s.log.Warn().Str("hypervisor", p.Name).Err(p.Err).Msg("libvirt unreachable: no placements there")
			continue
		}
		if err := s.store.SetHypervisorCapacity(ctx, p.Name, p.CPUs, p.MemoryMiB); err != nil {
			s.log.Warn().Err(err).Msg("record capacity")
		}
	}
	s.mu.Lock()
	s.unreachable = unreachable
	s.mu.Unlock()
}
