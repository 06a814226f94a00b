package hooks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/server"
	"github.com/drover-hpc/drover/internal/slurm"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/virt"
	"github.com/drover-hpc/drover/internal/vnode"
	"github.com/drover-hpc/drover/scheduler"
)

// NodeControl is the part of Slurm the hooks change: a node that cannot be resumed goes DOWN.
type NodeControl interface {
	Down(ctx context.Context, node, reason string) error
}

// JobReader reads a job's record from Slurm (slurmrestd): its time limit, constraint and hints.
type JobReader interface {
	Job(ctx context.Context, id uint32) (slurm.Job, error)
}

// Decider is a drover server deciding placements (server.Client).
type Decider interface {
	Place(ctx context.Context, req server.PlaceRequest) (scheduler.Decision, error)
}

// Hooks holds what every hook needs.
type Hooks struct {
	Store       *store.Store
	Catalog     *vnode.Catalog
	Hypervisors []config.Hypervisor
	// Server, when set, decides placements; else Placer does, on the hook's own snapshot.
	Server Decider
	Placer scheduler.Placer
	// Jobs, when set, gives the job's time limit, constraint and drover hints; without it the
	// resume file's features and extra are all the hook knows.
	Jobs  JobReader
	Slurm NodeControl
	Log   zerolog.Logger
	// ConnectTimeout bounds connecting to each hypervisor; an unreachable one is left out.
	ConnectTimeout time.Duration
}

// host is one hypervisor in a snapshot.
type host struct {
	cfg    config.Hypervisor
	conn   *virt.Conn // nil when unreachable
	err    error
	vnodes map[string]bool // vnodes running there
	freeMB int64           // -1 when unknown
}

// snapshot connects to every hypervisor in parallel and lists its vnodes. Unreachable hypervisors
// are kept with their error: they cannot take a vnode, but they are part of the explanation.
func (h *Hooks) snapshot(ctx context.Context) []*host {
	hosts := make([]*host, len(h.Hypervisors))
	var wg sync.WaitGroup
	for i, hc := range h.Hypervisors {
		hosts[i] = &host{cfg: hc, vnodes: map[string]bool{}, freeMB: -1}
		wg.Add(1)
		go func(hs *host) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, h.ConnectTimeout)
			defer cancel()
			c, err := virt.Connect(cctx, hs.cfg.Name, hs.cfg.URI)
			if err != nil {
				hs.err = err
				return
			}
			doms, err := c.List(cctx)
			if err != nil {
				hs.err = err
				_ = c.Close()
				return
			}
			for _, d := range doms {
				if d.Active && h.Catalog.Has(d.Name) {
					hs.vnodes[d.Name] = true
				}
			}
			if info, err := c.HostInfo(cctx); err == nil {
				hs.freeMB = int64(info.FreeBytes >> 20)
			}
			hs.conn = c
		}(hosts[i])
	}
	wg.Wait()
	return hosts
}

func closeAll(hosts []*host) {
	for _, hs := range hosts {
		if hs.conn != nil {
			_ = hs.conn.Close()
		}
	}
}

// planned turns the snapshot into the planner's view.
func planned(hosts []*host) []scheduler.Host {
	out := make([]scheduler.Host, 0, len(hosts))
	for _, hs := range hosts {
		out = append(out, scheduler.Host{Name: hs.cfg.Name, Reachable: hs.conn != nil, VNodes: len(hs.vnodes), FreeMemoryMiB: hs.freeMB})
	}
	return out
}

// where returns the hosts a vnode runs on.
func where(hosts []*host, name string) []*host {
	var out []*host
	for _, hs := range hosts {
		if hs.vnodes[name] {
			out = append(out, hs)
		}
	}
	return out
}

// Outcome is what happened to one node.
type Outcome struct {
	Node       string
	Hypervisor string
	Action     string // started, already-running, failed, destroyed, absent
	Reason     string
}

// Resume boots the vnodes named by nodes. jobs maps nodes to the job they are resumed for
// (from SLURM_RESUME_FILE; may be nil). Every node gets an outcome; the error lists the failures.
func (h *Hooks) Resume(ctx context.Context, nodes []string, jobs map[string]ResumeJob) ([]Outcome, error) {
	hosts := h.snapshot(ctx)
	defer closeAll(hosts)
	for _, hs := range hosts {
		if hs.err != nil {
			h.Log.Warn().Str("hypervisor", hs.cfg.Name).Err(hs.err).Msg("hypervisor left out of placement")
		}
	}
	var outs []Outcome
	var failed []string
	for _, name := range nodes {
		o := h.resumeOne(ctx, hosts, name, jobs[name])
		outs = append(outs, o)
		if o.Action == "failed" {
			failed = append(failed, fmt.Sprintf("%s: %s", name, o.Reason))
		}
	}
	if len(failed) > 0 {
		return outs, fmt.Errorf("resume failed for %d of %d vnodes: %s", len(failed), len(nodes), strings.Join(failed, "; "))
	}
	return outs, nil
}

func (h *Hooks) resumeOne(ctx context.Context, hosts []*host, name string, job ResumeJob) Outcome {
	log := h.Log.With().Str("vnode", name).Int64("job", job.JobID).Logger()
	var jobID *int64
	if job.JobID > 0 {
		jobID = &job.JobID
	}
	n, ok := h.Catalog.Lookup(name)
	if !ok {
		// not ours: say so in Slurm too, a vnode nobody boots would wait out ResumeTimeout
		return h.fail(ctx, log, name, "", jobID, fmt.Sprintf("not a drover vnode (vnodes.nodes is %q)", strings.Join(h.Catalog.Names(), ",")), true)
	}
	if on := where(hosts, name); len(on) > 0 {
		// Slurm may call ResumeProgram twice for a node: the VM it asked for is already there
		hv := on[0].cfg.Name
		if err := h.recordBoot(ctx, n, hv, on[0], jobID); err != nil {
			log.Error().Err(err).Msg("record")
		}
		log.Info().Str("hypervisor", hv).Msg("vnode already running; nothing to do")
		return Outcome{Node: name, Hypervisor: hv, Action: "already-running"}
	}

	spec := h.Catalog.Spec(n)
	req, err := h.request(ctx, log, name, spec.VCPUs, int64(spec.MemoryMiB), job, hosts)
	if err != nil {
		return h.fail(ctx, log, name, "", jobID, err.Error(), true)
	}
	d, err := h.decide(ctx, req, hosts)
	if err != nil {
		return h.fail(ctx, log, name, "", jobID, err.Error(), true)
	}
	if d.Host == "" {
		h.recordPlacement(ctx, log, d, jobID, "unplaceable")
		return h.fail(ctx, log, name, "", jobID, d.Reason, true)
	}
	var target *host
	for _, hs := range hosts {
		if hs.cfg.Name == d.Host {
			target = hs
		}
	}
	xml, err := spec.XML()
	if err != nil {
		h.recordPlacement(ctx, log, d, jobID, "failed")
		return h.fail(ctx, log, name, d.Host, jobID, "bad vnode definition: "+err.Error(), true)
	}
	start := time.Now()
	dom, err := target.conn.Create(ctx, xml)
	if errors.Is(err, virt.ErrDomainExists) {
		// started between our snapshot and now (a concurrent resume): take it as running
		if got, lerr := target.conn.Lookup(ctx, name); lerr == nil && got.Active {
			dom, err = got, nil
		}
	}
	if err != nil {
		h.recordPlacement(ctx, log, d, jobID, "failed")
		return h.fail(ctx, log, name, d.Host, jobID, fmt.Sprintf("%s refused the VM: %v", d.Host, err), true)
	}
	target.vnodes[name] = true
	if target.freeMB >= 0 {
		target.freeMB -= int64(spec.MemoryMiB)
	}
	h.recordPlacement(ctx, log, d, jobID, "placed")
	if err := h.recordBoot(ctx, n, d.Host, target, jobID); err != nil {
		log.Error().Err(err).Msg("record boot")
	}
	log.Info().Str("hypervisor", d.Host).Str("uuid", dom.UUID).Str("why", d.Reason).
		Dur("create", time.Since(start)).Msg("vnode started")
	return Outcome{Node: name, Hypervisor: d.Host, Action: "started", Reason: d.Reason}
}

// request gathers what placement must know of the vnode and its job: size, the job's constraint
// and time limit, its drover hints, and where its other vnodes already run.
func (h *Hooks) request(ctx context.Context, log zerolog.Logger, name string, cpus int, mib int64, job ResumeJob, hosts []*host) (scheduler.Request, error) {
	req := scheduler.Request{VNode: name, JobID: job.JobID, CPUs: cpus, MemoryMiB: mib, Constraint: job.Features}
	var comment string
	if h.Jobs != nil && job.JobID > 0 && job.JobID <= math.MaxUint32 {
		jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		j, err := h.Jobs.Job(jctx, uint32(job.JobID))
		cancel()
		if err != nil {
			log.Warn().Err(err).Msg("job record unavailable: placing on the resume file's facts alone")
		} else {
			req.TimeLimit, comment = j.TimeLimit, j.Comment
			if req.Constraint == "" {
				req.Constraint = j.Constraint
			}
		}
	}
	hints, err := scheduler.ParseHints(comment, job.Extra)
	if err != nil {
		return req, err
	}
	req.Hints = hints
	for _, other := range job.nodes() {
		if other == name {
			continue
		}
		for _, hs := range where(hosts, other) {
			req.JobHosts = append(req.JobHosts, hs.cfg.Name)
		}
	}
	return req, nil
}

// decide asks the server when there is one, else the local placer.
func (h *Hooks) decide(ctx context.Context, req scheduler.Request, hosts []*host) (scheduler.Decision, error) {
	if h.Server == nil {
		return h.Placer.Place(req, planned(hosts)), nil
	}
	pr := server.PlaceRequest{VNode: req.VNode, JobID: req.JobID, CPUs: req.CPUs, MemoryMiB: req.MemoryMiB,
		Constraint: req.Constraint, TimeLimitS: int64(req.TimeLimit / time.Second), Hints: req.Hints, JobHosts: req.JobHosts}
	for _, hs := range hosts {
		if hs.conn == nil {
			pr.Unreachable = append(pr.Unreachable, hs.cfg.Name)
		}
	}
	d, err := h.Server.Place(ctx, pr)
	if err != nil {
		return d, fmt.Errorf("no placement: %w", err)
	}
	if d.Host != "" && !slices.ContainsFunc(hosts, func(hs *host) bool { return hs.cfg.Name == d.Host && hs.conn != nil }) {
		return d, fmt.Errorf("the server chose %s, which this hook cannot reach", d.Host)
	}
	return d, nil
}

func (h *Hooks) recordBoot(ctx context.Context, n vnode.Node, hv string, hs *host, jobID *int64) error {
	var uuid string
	if d, err := hs.conn.Lookup(ctx, n.Name); err == nil {
		uuid = d.UUID
	}
	spec := h.Catalog.Spec(n)
	err := h.Store.VnodeBooting(ctx, store.Boot{Name: n.Name, Address: n.Address, MAC: n.MAC, CPUs: spec.VCPUs,
		MemoryMiB: int64(spec.MemoryMiB), Hypervisor: hv, DomainUUID: uuid, JobID: jobID})
	if err != nil {
		return err
	}
	return h.Store.VnodeEvent(ctx, n.Name, "resume", hv, map[string]any{"job_id": jobID})
}

func (h *Hooks) recordPlacement(ctx context.Context, log zerolog.Logger, d scheduler.Decision, jobID *int64, outcome string) {
	_, err := h.Store.InsertPlacement(ctx, store.Placement{VNode: d.VNode, JobID: jobID, Hypervisor: d.Host,
		Outcome: outcome, Policy: d.Policy, Reason: d.Reason, Explain: d})
	if err != nil {
		log.Error().Err(err).Msg("record placement")
	}
}

// fail records a failed resume and, when down is set, marks the node DOWN in Slurm with the reason.
func (h *Hooks) fail(ctx context.Context, log zerolog.Logger, name, hv string, jobID *int64, reason string, down bool) Outcome {
	log.Error().Str("hypervisor", hv).Str("reason", reason).Msg("vnode not resumed")
	if h.Catalog.Has(name) {
		if err := h.Store.SetVnodeState(ctx, name, "failed", reason, nil); err != nil {
			log.Error().Err(err).Msg("record failure")
		}
		if err := h.Store.VnodeEvent(ctx, name, "resume-failed", hv, map[string]any{"reason": reason, "job_id": jobID}); err != nil {
			log.Error().Err(err).Msg("record failure event")
		}
	}
	if h.Slurm != nil {
		if err := h.Slurm.Down(ctx, name, slurmReason(reason)); err != nil {
			log.Error().Err(err).Msg("set node DOWN in Slurm")
		}
	}
	return Outcome{Node: name, Hypervisor: hv, Action: "failed", Reason: reason}
}

// slurmReason fits a reason into Slurm's node reason field: one printable line, bounded.
func slurmReason(s string) string {
	s = "drover: " + strings.Join(strings.Fields(s), " ")
	var b strings.Builder
	for _, r := range s {
		if r >= 0x20 && r != 0x7f && r != '"' {
			b.WriteRune(r)
		}
	}
	s = b.String()
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

// SuspendMigrationWait bounds how long suspend waits for a vnode's live migration to end: a VM
// destroyed mid-migration would leave the journal to reconciliation and the destination with a
// half-received guest.
var SuspendMigrationWait = 2 * time.Minute

// awaitMigrations waits until none of nodes has an unfinished migration (or SuspendMigrationWait
// passes), so suspend destroys each VM where it ends up.
func (h *Hooks) awaitMigrations(ctx context.Context, nodes []string) {
	deadline := time.Now().Add(SuspendMigrationWait)
	for _, name := range nodes {
		logged := false
		for {
			m, _, err := h.Store.UnfinishedMigration(ctx, name)
			if err != nil { // none (ErrNotFound), or the database cannot tell: go ahead
				break
			}
			if !logged {
				h.Log.Info().Str("vnode", name).Int64("migration", m.ID).Str("phase", m.Phase).
					Msg("suspend waits for the vnode's live migration to end")
				logged = true
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				h.Log.Warn().Str("vnode", name).Int64("migration", m.ID).Msg("suspend: migration still unfinished; destroying the VM wherever it is")
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

// Suspend destroys the VMs of the vnodes named by nodes, wherever they run.
func (h *Hooks) Suspend(ctx context.Context, nodes []string) ([]Outcome, error) {
	h.awaitMigrations(ctx, nodes)
	hosts := h.snapshot(ctx)
	defer closeAll(hosts)
	var outs []Outcome
	var failed []string
	for _, name := range nodes {
		log := h.Log.With().Str("vnode", name).Logger()
		if !h.Catalog.Has(name) {
			failed = append(failed, name+": not a drover vnode")
			outs = append(outs, Outcome{Node: name, Action: "failed", Reason: "not a drover vnode"})
			continue
		}
		on := where(hosts, name)
		o := Outcome{Node: name, Action: "absent"}
		var errs []string
		for _, hs := range on {
			if err := hs.conn.Destroy(ctx, name); err != nil && !errors.Is(err, virt.ErrNoDomain) {
				errs = append(errs, err.Error())
				continue
			}
			o.Action, o.Hypervisor = "destroyed", hs.cfg.Name
		}
		unreachable := 0
		for _, hs := range hosts {
			if hs.conn == nil {
				unreachable++
			}
		}
		none := ""
		switch {
		case len(errs) > 0:
			o.Action, o.Reason = "failed", strings.Join(errs, "; ")
			failed = append(failed, name+": "+o.Reason)
			_ = h.Store.SetVnodeState(ctx, name, "failed", "suspend: "+o.Reason, nil)
		case unreachable > 0 && len(on) == 0:
			// it may run on a hypervisor we cannot see: do not claim it is gone
			o.Action, o.Reason = "failed", fmt.Sprintf("%d hypervisors unreachable; the VM may still run there", unreachable)
			failed = append(failed, name+": "+o.Reason)
		default:
			if err := h.Store.SetVnodeState(ctx, name, "absent", "suspended by Slurm", &none); err != nil {
				log.Error().Err(err).Msg("record suspend")
			}
		}
		if err := h.Store.VnodeEvent(ctx, name, "suspend", o.Hypervisor, map[string]any{"action": o.Action, "reason": o.Reason}); err != nil {
			log.Error().Err(err).Msg("record suspend event")
		}
		log.Info().Str("action", o.Action).Str("hypervisor", o.Hypervisor).Str("reason", o.Reason).Msg("suspend")
		outs = append(outs, o)
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return outs, fmt.Errorf("suspend failed for %d of %d vnodes: %s", len(failed), len(nodes), strings.Join(failed, "; "))
	}
	return outs, nil
}
