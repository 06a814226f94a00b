package scheduler

import (
	"fmt"
	"sort"
)

// Host is a hypervisor as the planner sees it: a snapshot, never a live handle.
type Host struct {
	Name          string
	Reachable     bool   // libvirt answered when the snapshot was taken
	State         string // active, draining, drained, maintenance, down ("" = active)
	VNodes        int    // vnodes running there now
	FreeMemoryMiB int64  // memory left for new VMs; negative when unknown
}

// Request is one vnode to place.
type Request struct {
	VNode     string
	JobID     int64
	CPUs      int
	MemoryMiB int64
}

// Reason codes say why a host was dropped. A dropped host is an answer, not an error.
const (
	ReasonUnreachable = "unreachable"
	ReasonNotActive   = "not-active"
	ReasonNoMemory    = "no-memory"
)

// Verdict is what the planner thought of one host.
type Verdict struct {
	Host     string  `json:"host"`
	Feasible bool    `json:"feasible"`
	Reason   string  `json:"reason,omitempty"` // reason code when not feasible
	Detail   string  `json:"detail,omitempty"`
	Score    float64 `json:"score,omitempty"` // in [0, 100] when feasible
}

// Decision is a placement: the chosen host ("" when none fits) and a verdict for every host.
type Decision struct {
	VNode    string    `json:"vnode"`
	Host     string    `json:"host"`
	Policy   string    `json:"policy"`
	Reason   string    `json:"reason"`
	Verdicts []Verdict `json:"verdicts"`
}

// Placer chooses a host for a vnode. Implementations are pure: same input, same decision.
type Placer interface {
	Place(req Request, hosts []Host) Decision
}

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
