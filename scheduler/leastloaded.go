package scheduler

import (
	"fmt"
	"sort"
)

// LeastLoaded places a vnode on the feasible host running the fewest vnodes, ties broken by name.
// Score = 100 / (1 + vnodes), so an empty host scores 100 and every extra vnode lowers it.
type LeastLoaded struct{}

var _ Placer = LeastLoaded{}

// Place implements Placer.
func (LeastLoaded) Place(req Request, hosts []Host) Decision {
	d := Decision{VNode: req.VNode, Policy: "least-loaded"}
	sorted := append([]Host(nil), hosts...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	best := -1
	for _, h := range sorted {
		v := Verdict{Host: h.Name}
		switch {
		// cheap checks first
		case !h.Reachable:
			v.Reason, v.Detail = ReasonUnreachable, "libvirt did not answer"
		case h.State != "" && h.State != "active":
			v.Reason, v.Detail = ReasonNotActive, "hypervisor is "+h.State
		case h.FreeMemoryMiB >= 0 && h.FreeMemoryMiB < req.MemoryMiB:
			v.Reason, v.Detail = ReasonNoMemory, fmt.Sprintf("%d MiB free, %d MiB needed", h.FreeMemoryMiB, req.MemoryMiB)
		default:
			v.Feasible = true
			v.Score = 100 / float64(1+h.VNodes)
			v.Detail = fmt.Sprintf("%d vnodes running", h.VNodes)
		}
		d.Verdicts = append(d.Verdicts, v)
		if v.Feasible && (best < 0 || v.Score > d.Verdicts[best].Score) {
			best = len(d.Verdicts) - 1
		}
	}
	if best < 0 {
		d.Reason = "no hypervisor can take it: " + summarize(d.Verdicts)
		return d
	}
	d.Host = d.Verdicts[best].Host
	d.Reason = fmt.Sprintf("least loaded (%s)", d.Verdicts[best].Detail)
	return d
}

// summarize lists each host's reason, e.g. "hv1: unreachable (libvirt did not answer); hv2: no-memory (...)".
func summarize(vs []Verdict) string {
	if len(vs) == 0 {
		return "no hypervisors are configured"
	}
	s := ""
	for i, v := range vs {
		if i > 0 {
			s += "; "
		}
		s += fmt.Sprintf("%s: %s (%s)", v.Host, v.Reason, v.Detail)
	}
	return s
}
