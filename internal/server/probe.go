package server

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Probe is what a hypervisor's libvirt said when asked.
type Probe struct {
	Name      string
	CPUs      int
	MemoryMiB int64
	// Active names the domains active there (running or paused), for the audit of the vnodes
	// table; nil when the prober does not list them.
	Active []string
	Err    error // unreachable: it cannot take a VM whatever its KPIs say
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
	probes := s.prober.Probe(pctx)
	for _, p := range probes {
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
	s.audit(ctx, probes)
}

// audit compares the vnodes the database has booting or running with the domains libvirt
// listed. A vnode whose VM is on no hypervisor at two probes in a row (so a suspend or a
// switch-over in progress is not mistaken for a loss) is recorded as failed with the reason, so
// its CPUs and memory stop counting against a host and the control loop stops trying to move it.
// Only the leader writes, and only when every hypervisor answered: an unreachable one may hold it.
func (s *Server) audit(ctx context.Context, probes []Probe) {
	s.mu.Lock()
	last := s.missing
	s.missing = nil
	s.mu.Unlock()
	if !s.Leading() {
		return
	}
	where := map[string]bool{}
	asked := make([]string, 0, len(probes))
	for _, p := range probes {
		if p.Err != nil || p.Active == nil {
			return
		}
		asked = append(asked, p.Name)
		for _, d := range p.Active {
			where[d] = true
		}
	}
	vms, err := s.store.LiveVnodes(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("audit of the vnodes: read them")
		return
	}
	missing := map[string]bool{}
	for _, vm := range vms {
		if where[vm.Name] {
			continue
		}
		if !last[vm.Name] {
			missing[vm.Name] = true // the next probe confirms
			continue
		}
		was := vm.State + " on " + vm.Hypervisor
		reason := fmt.Sprintf("its VM is on none of %s at two probes in a row (the database said %s)", strings.Join(asked, ", "), was)
		ok, err := s.store.VnodeVanished(ctx, vm.Name, vm.State, vm.Hypervisor, reason, map[string]any{"database": was, "asked": asked, "by": "server"})
		if err != nil {
			s.log.Warn().Str("vnode", vm.Name).Err(err).Msg("audit of the vnodes: record a vanished VM")
			continue
		}
		if ok {
			s.log.Warn().Str("vnode", vm.Name).Str("database", was).Strs("asked", asked).
				Msg("vnode's VM is gone from every hypervisor: recorded as failed")
		}
	}
	s.mu.Lock()
	s.missing = missing
	s.mu.Unlock()
}
