package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/virt"
)

// Reconciliation's timing. A migration whose owner died may still run in libvirtd for a moment
// (the source notices the destination is gone); it is given jobWait to end on its own, then
// aborted and given abortWait more.
const (
	jobWait    = 5 * time.Second
	abortWait  = 10 * time.Second
	settlePoll = 200 * time.Millisecond
	opTimeout  = 30 * time.Second // one libvirt action (destroy, resume, start…)
)

// Finding is what reconciliation found for one unfinished migration and what it did.
type Finding struct {
	ID       int64
	VNode    string
	From, To string
	Phase    Phase  // the phase the journal was left in
	Owner    string // the process that journaled it (host:pid)
	// Source and Destination are what each hypervisor held once libvirt's jobs had settled,
	// e.g. "running", "paused (by migration)", "absent".
	Source, Destination string
	Did                 []string // the actions taken, e.g. "destroyed on hv2"
	Outcome             Phase    // the phase journaled; "" when the row was left unfinished
	RunsOn              string   // where the vnode runs now; "" when nowhere or not known
	Busy                bool     // its owner still runs (holds the vnode's lock): left alone
	NeedsOperator       bool
	Note                string // why: the decision table's line, and what went wrong if anything did
	Hint                string // what an operator should do; "" when nothing
	Took                time.Duration
}

// Consistent reports whether the finding leaves nothing to do: its owner still runs, or the guest
// runs exactly once and the journal is finished.
func (f Finding) Consistent() bool { return !f.NeedsOperator }

// Reconcile settles every unfinished migration whose owner is gone (its process died: the vnode's
// database lock is free) with what both hypervisors hold, so the guest runs exactly once, the
// journal row is finished and the vnodes row says where it runs (see decide for the table).
// Migrations whose owner still runs are reported Busy and left alone. Running it again changes
// nothing. The error is for the database failing; trouble with one migration is in its finding.
func (e *Executor) Reconcile(ctx context.Context) ([]Finding, error) {
	return e.reconcile(ctx, "")
}

// reconcile is Reconcile; held names a vnode whose lock the caller already holds.
func (e *Executor) reconcile(ctx context.Context, held string) ([]Finding, error) {
	rows, err := e.st.UnfinishedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, u := range rows {
		if u.VNode == held {
			out = append(out, e.reconcileOne(ctx, u))
			continue
		}
		lock, got, err := e.st.TryLockVnode(ctx, u.VNode)
		if err != nil {
			return out, err
		}
		if !got {
			out = append(out, Finding{ID: u.ID, VNode: u.VNode, From: u.Src, To: u.Dst, Phase: Phase(u.Phase), Owner: u.Owner,
				Busy: true, Note: "its owner still runs (it holds the vnode's lock): left alone"})
			continue
		}
		// it may have finished between the list and the lock
		cur, _, err := e.st.UnfinishedMigration(ctx, u.VNode)
		if err == nil && cur.ID == u.ID {
			out = append(out, e.reconcileOne(ctx, u))
		}
		lock.Release()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return out, err
		}
	}
	return out, nil
}

// sides is one migration's two hypervisors as reconciliation reaches them.
type sides struct {
	vnode    string
	src, dst hostOps // nil when the hypervisor could not be reached
	srcErr   error
	dstErr   error
}

func (s *sides) host(which side) hostOps {
	if which == source {
		return s.src
	}
	return s.dst
}

// inspect reads both sides in parallel.
func (s *sides) inspect(ctx context.Context) (src, dst domainView) {
	var wg sync.WaitGroup
	look := func(h hostOps, err error, v *domainView) {
		defer wg.Done()
		if h == nil {
			*v = domainView{Err: err}
			return
		}
		*v = h.Inspect(ctx, s.vnode)
	}
	wg.Add(2)
	go look(s.src, s.srcErr, &src)
	go look(s.dst, s.dstErr, &dst)
	wg.Wait()
	return src, dst
}

func (s *sides) close() {
	for _, h := range []hostOps{s.src, s.dst} {
		if h != nil {
			_ = h.Close()
		}
	}
}

// reconcileOne settles one migration whose owner is gone; the caller holds the vnode's lock.
func (e *Executor) reconcileOne(ctx context.Context, u store.Unfinished) Finding {
	start := time.Now()
	f := Finding{ID: u.ID, VNode: u.VNode, From: u.Src, To: u.Dst, Phase: Phase(u.Phase), Owner: u.Owner}
	s := &sides{vnode: u.VNode}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.src, s.srcErr = e.hosts(ctx, u.Src) }()
	go func() { defer wg.Done(); s.dst, s.dstErr = e.hosts(ctx, u.Dst) }()
	wg.Wait()
	defer s.close()

	if why := e.jobAlive(ctx, s); why != "" {
		// libvirt cancels a client-driven migration when its client goes: one still sending
		// has a live owner that lost its database session, and must not be cut short
		f.Busy, f.Note, f.Took = true, why, time.Since(start)
		e.log.Info().Int64("migration", f.ID).Str("vnode", f.VNode).Msg("reconcile: left alone: " + why)
		return f
	}
	dec := e.resolve(ctx, s, &f)
	f.Took = time.Since(start)
	// journal it: the migration row, the vnodes row, the vnode's history
	if err := e.journalFinding(ctx, f, dec); err != nil {
		f.NeedsOperator = true
		f.Note += "; journaling the finding failed: " + err.Error()
		f.Hint = "check the database, then run drover reconcile again"
	}
	ev := e.log.Warn()
	if !f.NeedsOperator {
		ev = e.log.Info()
	}
	ev.Int64("migration", f.ID).Str("vnode", f.VNode).Str("from", f.From).Str("to", f.To).Str("phase", string(f.Phase)).
		Str("owner", f.Owner).Str("source", f.Source).Str("destination", f.Destination).Strs("did", f.Did).
		Str("outcome", string(f.Outcome)).Str("runs_on", f.RunsOn).Bool("needs_operator", f.NeedsOperator).
		Str("hint", f.Hint).Dur("took", f.Took).Msg("reconciled an interrupted migration: " + f.Note)
	return f
}

// resolve brings one migration's guest to a single running copy: it lets libvirt's jobs settle,
// decides (see decide), acts and checks the result with a fresh look. It fills in f's views,
// actions, note, hint and outcome, and returns the decision as carried out (with no outcome when
// it is left to an operator). It touches libvirt only, never the database.
func (e *Executor) resolve(ctx context.Context, s *sides, f *Finding) decision {
	// 1. let libvirt's jobs end, aborting one that outlives jobWait
	src, dst := e.settle(ctx, s, f)
	f.Source, f.Destination = src.String(), dst.String()
	// 2. decide from the journal's phase and what each side holds
	dec := decide(f.Phase, src, dst)
	f.Note, f.Hint, f.NeedsOperator = dec.why, dec.hint, dec.operator
	hvName := map[side]string{source: f.From, destination: f.To}
	// 3. act, then check the result with a fresh look
	failed := false
	for _, st := range dec.steps {
		if err := e.act(ctx, s.host(st.on), st.op, f.VNode); err != nil {
			failed = true
			f.Did = append(f.Did, fmt.Sprintf("%s on %s failed: %v", st.op, hvName[st.on], err))
			break
		}
		f.Did = append(f.Did, pastTense(st.op)+" on "+hvName[st.on])
	}
	if len(dec.steps) > 0 || dec.keep != nowhere {
		src, dst = s.inspect(ctx)
		if problem := checkKept(dec.keep, src, dst); problem != "" || failed {
			if problem == "" {
				problem = "an action failed"
			}
			f.Note = fmt.Sprintf("%s; then: %s (source %s, destination %s)", dec.why, problem, src, dst)
			f.NeedsOperator, dec.outcome, dec.keep = true, "", nowhere
			f.Hint = "look at both hypervisors (virsh list --all), keep one copy, then run drover reconcile again"
		}
	}
	f.Outcome, f.RunsOn = dec.outcome, hvName[dec.keep]
	return dec
}

// jobAlive watches a libvirt job on either side for up to jobWait: when it keeps sending data it
// returns why it is left alone; "" when there is no job, it ended, or it sends nothing.
func (e *Executor) jobAlive(ctx context.Context, s *sides) string {
	src, dst := s.inspect(ctx)
	if !src.Job && !dst.Job {
		return ""
	}
	first := max(src.JobSent, dst.JobSent)
	for deadline := time.Now().Add(e.jobWait); time.Now().Before(deadline) && ctx.Err() == nil; {
		t := time.NewTimer(e.settlePoll)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		src, dst = s.inspect(ctx)
		if !src.Job && !dst.Job {
			return ""
		}
		if sent := max(src.JobSent, dst.JobSent); sent > first {
			return fmt.Sprintf("its libvirt job is still sending (%.1f MiB so far): the owner lives on though its database session was lost; left alone", float64(sent)/(1<<20))
		}
	}
	return ""
}

// settle waits for libvirt jobs on the domain to end: jobWait on their own, then abortWait more
// after aborting them. It returns the last views, which may still show a job.
func (e *Executor) settle(ctx context.Context, s *sides, f *Finding) (src, dst domainView) {
	wait := func(d time.Duration) {
		for deadline := time.Now().Add(d); ; {
			src, dst = s.inspect(ctx)
			if !src.Job && !dst.Job || !time.Now().Before(deadline) || ctx.Err() != nil {
				return
			}
			t := time.NewTimer(e.settlePoll)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
	wait(e.jobWait)
	if !src.Job && !dst.Job {
		return src, dst
	}
	for _, w := range []struct {
		on   side
		v    domainView
		name string
	}{{source, src, f.From}, {destination, dst, f.To}} {
		if !w.v.Job {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, opTimeout)
		err := s.host(w.on).AbortJob(actx, s.vnode)
		cancel()
		if err != nil {
			f.Did = append(f.Did, fmt.Sprintf("abort the job on %s failed: %v", w.name, err))
		} else {
			f.Did = append(f.Did, "aborted the libvirt job on "+w.name)
		}
	}
	wait(e.abortWait)
	return src, dst
}

// act runs one libvirt action, bounded by opTimeout.
func (e *Executor) act(ctx context.Context, h hostOps, op opKind, name string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	switch op {
	case opResume:
		return h.Resume(ctx, name)
	case opDestroy:
		err := h.Destroy(ctx, name)
		if errors.Is(err, virt.ErrNoDomain) || errors.Is(err, virt.ErrWrongState) {
			return nil // gone or stopped meanwhile: what we wanted
		}
		return err
	case opUndefine:
		err := h.Undefine(ctx, name)
		if errors.Is(err, virt.ErrNoDomain) {
			return nil
		}
		return err
	case opStart:
		return h.Start(ctx, name)
	}
	return fmt.Errorf("unknown action %q", op)
}

func pastTense(op opKind) string {
	return map[opKind]string{opResume: "resumed", opDestroy: "destroyed", opUndefine: "undefined", opStart: "started"}[op]
}

// checkKept says what is wrong after acting, or "": the kept side runs and the other has no
// active copy; when nothing is kept, neither side has an active copy.
func checkKept(keep side, src, dst domainView) string {
	kept, other := src, dst
	if keep == destination {
		kept, other = dst, src
	}
	switch {
	case src.Err != nil || dst.Err != nil:
		return "a hypervisor stopped answering"
	case keep != nowhere && classify(kept) != kRunning:
		return "the copy on the " + keep.String() + " is " + kept.String() + ", not running"
	case keep != nowhere && other.Active:
		return "the other copy is still active"
	case keep == nowhere && (src.Active || dst.Active):
		return "a copy is still active"
	}
	return ""
}

// journalFinding records a finding: a journal event with what was found and done, the row's
// final phase and text, the vnodes row and a vnode event. A finding left to an operator is
// journaled once: running reconciliation again records nothing new.
func (e *Executor) journalFinding(ctx context.Context, f Finding, dec decision) error {
	ctx = context.WithoutCancel(ctx)
	text := fmt.Sprintf("reconciled after its owner %s stopped in phase %s: %s", orUnknown(f.Owner), f.Phase, f.Note)
	if len(f.Did) > 0 {
		text += "; " + strings.Join(f.Did, ", ")
	}
	if f.Hint != "" {
		text += "; next: " + f.Hint
	}
	detail := map[string]any{"by": "reconcile", "owner": f.Owner, "found_phase": string(f.Phase), "source": f.Source,
		"destination": f.Destination, "did": f.Did, "finding": f.Note, "needs_operator": f.NeedsOperator,
		"took_ms": f.Took.Milliseconds()}
	if f.Hint != "" {
		detail["hint"] = f.Hint
	}
	phase := f.Outcome
	if phase == "" { // left unfinished: write the finding once
		phase = f.Phase
		evs, err := e.st.MigrationEvents(ctx, f.ID)
		if err != nil {
			return err
		}
		if n := len(evs); n > 0 && evs[n-1].Detail["by"] == "reconcile" && evs[n-1].Detail["finding"] == f.Note {
			return nil
		}
	}
	if err := write(ctx, func(ctx context.Context) error {
		return e.st.SetMigrationPhase(ctx, f.ID, string(phase), text, detail)
	}); err != nil {
		return err
	}
	if f.Outcome == "" {
		return nil
	}
	state, reason, hv := "running", "", f.RunsOn
	switch {
	case f.RunsOn == "":
		state, reason = "failed", fmt.Sprintf("lost in migration %d: %s", f.ID, f.Note)
	case f.Outcome == PhaseFailed:
		reason = fmt.Sprintf("restarted on %s by reconciling migration %d: its memory was lost", f.RunsOn, f.ID)
	}
	if err := write(ctx, func(ctx context.Context) error {
		return e.st.SetVnodeState(ctx, f.VNode, state, reason, &hv)
	}); err != nil {
		return err
	}
	detail["migration"] = f.ID
	detail["outcome"] = string(f.Outcome)
	return write(ctx, func(ctx context.Context) error {
		return e.st.VnodeEvent(ctx, f.VNode, "reconciled", hv, detail)
	})
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
