package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/virt"
)

// lookupTimeout bounds looking a domain up on one hypervisor, connecting included.
const lookupTimeout = 15 * time.Second

// sighting is what one hypervisor said about the vnode's domain.
type sighting struct {
	hv   string
	conn *virt.Conn   // nil when the hypervisor could not be reached
	dom  *virt.Domain // nil when the hypervisor has no domain of that name (or could not be asked)
	err  error        // why the hypervisor could not be asked
}

// placement is where the vnode runs, decided from the sightings.
type placement struct {
	src, dst    sighting
	unreachable []sighting // other hypervisors that could not be asked
}

// locate asks every hypervisor, in parallel, about the domain called vnode.
func (e *Executor) locate(ctx context.Context, vnode string) []sighting {
	hvs := e.conns.Hypervisors()
	out := make([]sighting, len(hvs))
	var wg sync.WaitGroup
	for i, h := range hvs {
		wg.Add(1)
		go func(i int, h config.Hypervisor) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
			defer cancel()
			s := sighting{hv: h.Name}
			c, err := e.conns.Conn(ctx, h.Name)
			if err != nil {
				s.err = err
				out[i] = s
				return
			}
			s.conn = c
			d, err := c.Lookup(ctx, vnode)
			switch {
			case errors.Is(err, virt.ErrNoDomain):
			case err != nil:
				s.err = err
				e.broken(h.Name, c, err)
			default:
				s.dom = &d
			}
			out[i] = s
		}(i, h)
	}
	wg.Wait()
	return out
}

// place decides, from what every hypervisor said, where the vnode runs and whether it may move to
// dst. The checks go from what the operator can fix at once (the destination) to what needs a look.
func place(vnode, dst string, seen []sighting) (placement, error) {
	var p placement
	var active []sighting
	found := false
	for _, s := range seen {
		if s.hv == dst {
			p.dst, found = s, true
		} else if s.err != nil {
			p.unreachable = append(p.unreachable, s)
		}
		if s.dom != nil && s.dom.Active {
			active = append(active, s)
		}
	}
	switch {
	case !found:
		return p, fmt.Errorf("%w %q (configured: %s)", ErrUnknownHypervisor, dst, sightingNames(seen))
	case p.dst.err != nil:
		return p, fmt.Errorf("%w: destination %s: %w", ErrUnreachable, dst, p.dst.err)
	case len(active) > 1:
		where := make([]string, len(active))
		for i, s := range active {
			where[i] = s.hv + " (" + s.dom.State.String() + ")"
		}
		return p, fmt.Errorf("%w: %s is active on %s", ErrRunsTwice, vnode, strings.Join(where, " and "))
	case len(active) == 0:
		var asked, missed []string
		for _, s := range seen {
			if s.err != nil {
				missed = append(missed, fmt.Sprintf("%s: %v", s.hv, s.err))
			} else {
				asked = append(asked, s.hv)
			}
		}
		detail := vnode + " runs on none of " + strings.Join(asked, ", ")
		if len(missed) > 0 {
			detail += "; could not ask " + strings.Join(missed, "; ")
		}
		return p, fmt.Errorf("%w: %s", ErrNotRunning, detail)
	}
	p.src = active[0]
	if p.src.hv == dst {
		return p, fmt.Errorf("%w: %s already runs on %s", ErrSameHypervisor, vnode, dst)
	}
	if !p.src.dom.Running() {
		return p, fmt.Errorf("%w: %s is %s on %s", ErrNotRunning, vnode, p.src.dom.State, p.src.hv)
	}
	return p, nil
}

func sightingNames(seen []sighting) string {
	ns := make([]string, len(seen))
	for i, s := range seen {
		ns[i] = s.hv
	}
	if len(ns) == 0 {
		return "none"
	}
	return strings.Join(ns, ", ")
}
