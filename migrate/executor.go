package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/virt"
)

// journalTimeout bounds each journal write. Writes after the migration started use a context that
// is not cancelled with the caller's, so an interrupted migration still ends up journaled.
const journalTimeout = 10 * time.Second

// Executor runs live migrations of vnodes, one per Migrate call; calls may run concurrently.
type Executor struct {
	cfg      config.Migration
	st       *store.Store
	conns    Conns
	log      zerolog.Logger
	owner    string
	interval time.Duration

	// reconciliation: how hypervisors are reached, and how long libvirt jobs may take to settle
	hosts                          func(ctx context.Context, hv string) (hostOps, error)
	jobWait, abortWait, settlePoll time.Duration
}

// Option changes an Executor's defaults.
type Option func(*Executor)

// WithOwner sets the owner recorded in the journal (default: hostname:pid).
func WithOwner(owner string) Option { return func(e *Executor) { e.owner = owner } }

// WithProgressInterval sets how often transfer progress is read and reported (default 250 ms).
func WithProgressInterval(d time.Duration) Option { return func(e *Executor) { e.interval = d } }

// New returns an executor with the migration settings cfg, journaling in st, reaching hypervisors
// through conns.
func New(cfg config.Migration, st *store.Store, conns Conns, log zerolog.Logger, opts ...Option) *Executor {
	e := &Executor{cfg: cfg, st: st, conns: conns, log: log, interval: probeInterval,
		jobWait: jobWait, abortWait: abortWait, settlePoll: settlePoll}
	e.hosts = e.openHost
	for _, o := range opts {
		o(e)
	}
	if e.owner == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "unknown"
		}
		e.owner = host + ":" + strconv.Itoa(os.Getpid())
	}
	return e
}

// Result is what one migration did.
type Result struct {
	ID       int64 // journal id; 0 when refused before journaling
	VNode    string
	From, To string
	Phase    Phase // the phase the journal was left in
	// Wall is from the Migrate call to its return; FirstByte from the call to the first memory
	// sent (0 if none was seen).
	Wall, FirstByte time.Duration
	Libvirt         virt.MigrateResult // libvirt's figures: QEMU time, downtime, bytes, iterations
	Verification    Verification
	// Corrected is set when the vnodes row disagreed with libvirt and was fixed before migrating:
	// what the row said.
	Corrected string
	// Unasked lists the other hypervisors that could not be asked whether they run the vnode too.
	Unasked []string
	// Reconciled lists the migrations left unfinished by processes that died, which were
	// reconciled before this one started.
	Reconciled []Finding
}

// Migrate moves req.VNode to req.To while it runs, journals each phase and verifies the guest on
// the destination. progress, if not nil, is called with phase changes and transfer progress, from
// one goroutine at a time. On failure the error is an *Error saying where the guest is and what
// to do; the Result holds the journal id and whatever was measured.
func (e *Executor) Migrate(ctx context.Context, req Request, progress func(Event)) (Result, error) {
	r := &run{e: e, req: req, start: time.Now(), progress: progress}
	r.res = Result{VNode: req.VNode, To: req.To}
	err := r.migrate(ctx)
	r.res.Wall = time.Since(r.start)
	r.res.ID, r.res.Phase = r.id, r.phase
	if err != nil {
		var me *Error
		if !errors.As(err, &me) {
			me = &Error{Err: err}
		}
		me.VNode, me.From, me.To, me.ID, me.Phase = req.VNode, r.res.From, req.To, r.id, r.phase
		if me.Hint == "" {
			me.Hint = hint(err, r)
		}
		e.log.Warn().Str("vnode", req.VNode).Str("to", req.To).Int64("migration", r.id).Str("phase", string(r.phase)).
			Str("hint", me.Hint).Err(err).Msg("migration did not succeed")
		return r.res, me
	}
	return r.res, nil
}

// run is the state of one Migrate call.
type run struct {
	e        *Executor
	req      Request
	set      config.Migration
	start    time.Time
	progress func(Event)
	emitMu   sync.Mutex

	id    int64
	phase Phase
	src   sighting
	dst   sighting
	res   Result

	journalErrs []error
}

// migrate is the whole migration, top to bottom; every return after journaling leaves the journal
// in a final phase and the vnodes row saying where the guest is.
func (r *run) migrate(ctx context.Context) error {
	e, req := r.e, r.req
	// 1. the request: names, reason, tuning (cheap checks first)
	reason, err := checkRequest(req)
	if err != nil {
		return err
	}
	if r.set, err = settings(e.cfg, req); err != nil {
		return err
	}
	if !known(e.conns.Hypervisors(), req.To) {
		return fmt.Errorf("%w %q (configured: %s)", ErrUnknownHypervisor, req.To, names(e.conns.Hypervisors()))
	}
	// 2. the database: the vnode exists and is not being stopped
	row, err := e.st.GetVnode(ctx, req.VNode)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w %q: the database has no such vnode", ErrUnknownVnode, req.VNode)
	}
	if err != nil {
		return fmt.Errorf("read vnode %s: %w", req.VNode, err)
	}
	if row.State == "stopping" {
		return fmt.Errorf("%w: %s is being stopped (%s)", ErrBusy, req.VNode, row.Reason)
	}
	// 3. the vnode's lock: from here on this process alone migrates or reconciles it
	lock, got, err := e.st.TryLockVnode(ctx, req.VNode)
	if err != nil {
		return err
	}
	if !got {
		if err := r.checkUnfinished(ctx); err != nil {
			return err
		}
		return &Error{Err: fmt.Errorf("%w: another drover process holds %s's lock (it is migrating or reconciling it)",
			store.ErrMigrationActive, req.VNode), Hint: "wait for it to finish, then try again"}
	}
	defer lock.Release()
	// journal rows of processes that died are settled first: they may hide where the vnode runs,
	// and they count against the limits
	found, err := e.reconcile(ctx, req.VNode)
	for _, f := range found {
		if !f.Busy {
			r.res.Reconciled = append(r.res.Reconciled, f)
		}
	}
	if err != nil {
		return fmt.Errorf("reconcile interrupted migrations: %w", err)
	}
	if err := r.checkUnfinished(ctx); err != nil { // reconciliation could not settle it
		var me *Error
		for _, f := range r.res.Reconciled {
			if f.VNode == req.VNode && f.NeedsOperator && errors.As(err, &me) {
				me.Hint = fmt.Sprintf("its owner %s is gone and reconciliation could not settle it (%s): %s",
					orUnknown(f.Owner), f.Note, f.Hint)
			}
		}
		return err
	}
	// 4. libvirt, the truth: where the domain runs, and whether the destination answers
	seen := e.locate(ctx, req.VNode)
	p, err := place(req.VNode, req.To, seen)
	if err != nil {
		if errors.Is(err, ErrNotRunning) {
			r.vanished(ctx, row, seen)
		}
		if errors.Is(err, ErrRunsTwice) { // a migration started meanwhile shows on both hosts
			if uerr := r.checkUnfinished(ctx); uerr != nil {
				return uerr
			}
		}
		return err
	}
	r.src, r.dst, r.res.From = p.src, p.dst, p.src.hv
	for _, u := range p.unreachable {
		r.res.Unasked = append(r.res.Unasked, u.hv)
		e.log.Warn().Str("vnode", req.VNode).Str("hypervisor", u.hv).Err(u.err).
			Msg("hypervisor unreachable: cannot rule out a second copy of the vnode there")
	}
	// 5. the vnodes row follows libvirt
	if err := r.reconcileRow(ctx, row); err != nil {
		return err
	}
	// 6. journal: planned, if the concurrency limits admit it
	uri := e.migrationURI(req.To)
	err = e.st.Admit(ctx, func(tx *store.Store) error {
		active, err := tx.UnfinishedMigrations(ctx)
		if err != nil {
			return err
		}
		if lerr := checkLimits(active, r.src.hv, req.To, e.cfg); lerr != nil {
			return lerr
		}
		r.id, err = tx.InsertMigration(ctx, store.NewMigration{VNode: req.VNode, Src: r.src.hv, Dst: req.To,
			Reason: reason, Owner: e.owner, Params: params(r.set, uri, req.SerialLog)})
		return err
	})
	if err != nil {
		if errors.Is(err, store.ErrMigrationActive) {
			if uerr := r.checkUnfinished(ctx); uerr != nil {
				return uerr
			}
		}
		return err
	}
	r.phase = PhasePlanned
	r.emit(Event{Phase: PhasePlanned})
	e.log.Info().Str("vnode", req.VNode).Str("from", r.src.hv).Str("to", req.To).Int64("migration", r.id).
		Str("reason", reason).Msg("migration planned")

	// 7. preparing: from here on, every exit journals a final phase
	jctx := context.WithoutCancel(ctx)
	// a failed write here leaves the guest untouched where it runs: rolled back
	if err := r.setPhase(jctx, PhasePreparing, "", map[string]any{"from": r.src.hv, "to": req.To, "uri": uri}); err != nil {
		return r.finish(jctx, PhaseRolledBack, err, r.src.hv)
	}
	reasonText := fmt.Sprintf("migrating from %s to %s (migration %d)", r.src.hv, req.To, r.id)
	if err := write(jctx, func(ctx context.Context) error {
		return e.st.SetVnodeState(ctx, req.VNode, "migrating", reasonText, &r.src.hv)
	}); err != nil {
		return r.finish(jctx, PhaseRolledBack, err, r.src.hv)
	}
	// 8. transfer and switch-over, bounded by the timeout; ctx's end aborts it
	res, err := r.transfer(ctx, uri)
	r.res.Libvirt = res
	if err != nil {
		return r.afterFailure(ctx, jctx, err)
	}
	return r.switchedOver(jctx, res, false)
}

// transfer runs libvirt's migration and journals "transferring" when the first bytes move.
func (r *run) transfer(ctx context.Context, uri string) (virt.MigrateResult, error) {
	timeout := r.set.Timeout
	var deadline time.Duration
	if r.set.TimeoutAction == virt.DeadlinePostCopy {
		// at the timeout libvirt switches to post-copy, which cannot be cancelled: the context
		// only guards against a migration that hangs even then
		deadline, timeout = r.set.Timeout, 2*r.set.Timeout
	}
	mctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	firstByte := make(chan virt.Progress, 1)
	var once sync.Once
	opts := virt.MigrateOptions{
		URI:               uri,
		MaxDowntime:       r.set.MaxDowntime,
		BandwidthMiBs:     uint64(r.set.BandwidthMiBs),
		AutoConverge:      r.set.AutoConverge,
		TLS:               r.set.TLS,
		PostCopyAfter:     r.set.PostCopyAfter,
		PostCopyWhenStuck: r.set.PostCopyWhenStuck,
		Deadline:          deadline,
		OnDeadline:        virt.DeadlinePostCopy,
		ProgressInterval:  r.e.interval,
		Progress: func(p virt.Progress) {
			if p.DataProcessed > 0 {
				once.Do(func() {
					r.res.FirstByte = time.Since(r.start)
					r.enter(PhaseTransferring, "")
					firstByte <- p
				})
			}
			r.emit(Event{Phase: r.currentPhase(), Progress: &p})
		},
	}
	// the journal write for the first byte runs beside the transfer, never in its progress loop
	journaled := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(journaled)
		var p virt.Progress
		select {
		case p = <-firstByte:
		case <-stop: // the first byte may have come just before the end
			select {
			case p = <-firstByte:
			default:
				return
			}
		}
		_ = r.journal(context.WithoutCancel(ctx), PhaseTransferring, "", map[string]any{
			"first_byte_ms": r.res.FirstByte.Milliseconds(), "total_bytes": p.DataTotal})
	}()
	res, err := r.src.conn.MigrateLive(mctx, r.req.VNode, r.dst.conn, opts)
	close(stop)
	<-journaled
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("no switch-over within %v (migration.timeout): %w", r.set.Timeout, err)
	}
	if err != nil && ctx.Err() == nil && r.currentPhase() == PhasePreparing {
		// libvirt could not set up the transfer: say where memory was to go, which is what to check
		to := uri + ", " + r.req.To + "'s migration_uri"
		if uri == "" {
			to = "the address libvirt derives from " + r.req.To + "'s hostname (it has no migration_uri)"
		}
		err = fmt.Errorf("%w (%w to %s)", err, errNothingSent, to)
	}
	return res, err
}

// switchedOver journals a migration libvirt completed, verifies the guest on the destination and
// journals the outcome. late is set when libvirt reported an error but the guest turned up on the
// destination anyway.
func (r *run) switchedOver(jctx context.Context, res virt.MigrateResult, late bool) error {
	if r.currentPhase() == PhasePreparing { // too quick for a progress reading, or reported late
		if r.res.FirstByte == 0 && res.FirstProgress > 0 {
			// from the executor's start: now, less the call's wall time, plus its first progress
			r.res.FirstByte = max(time.Since(r.start)-res.Wall+res.FirstProgress, time.Nanosecond)
		}
		_ = r.setPhase(jctx, PhaseTransferring, "", map[string]any{"first_byte_ms": r.res.FirstByte.Milliseconds(), "late": true,
			"estimated": res.FirstProgressEstimated})
	}
	if res.DataTotal > 0 {
		// the completed transfer's own figures close the progress display, so even a transfer too
		// short for a reading shows what was sent
		final := virt.Progress{Elapsed: res.Elapsed, DataTotal: res.DataTotal, DataProcessed: res.DataProcessed,
			Iteration: res.Iterations, PostCopy: res.PostCopy, Completed: true}
		if res.Elapsed > 0 {
			final.BytesPerSec = uint64(float64(res.DataProcessed) / res.Elapsed.Seconds())
		}
		r.emit(Event{Phase: r.currentPhase(), Progress: &final})
	}
	_ = r.setPhase(jctx, PhaseSwitchingOver, "", map[string]any{
		"downtime_ms": res.Downtime.Milliseconds(), "qemu_ms": res.Elapsed.Milliseconds(), "libvirt_error": late,
		"post_copy": res.PostCopy, "post_copy_why": res.PostCopyWhy})
	figures := store.MigrationFigures{Total: res.Elapsed, Downtime: res.Downtime, BytesTotal: int64(res.DataTotal),
		BytesProcessed: int64(res.DataProcessed), Iterations: int(res.Iterations)}
	if err := write(jctx, func(ctx context.Context) error { return r.e.st.SetMigrationFigures(ctx, r.id, figures) }); err != nil {
		r.journalFailed(err)
	}
	_ = r.setPhase(jctx, PhaseVerifying, "", map[string]any{"verify_for_ms": r.set.VerifyFor.Milliseconds()})

	// 9. the guest must live on the destination, not only have arrived there
	w := watcher{dst: r.req.To, probe: domainProbe(r.dst.conn, r.req.VNode), console: openConsole(r.req.SerialLog),
		verifyFor: r.set.VerifyFor, interval: probeEvery(r.set.VerifyFor), quiet: quietBelow(r.set), grace: serialGrace}
	v := w.run(jctx)
	r.res.Verification = v
	detail := map[string]any{"watched_ms": v.Watched.Milliseconds(), "cpu_ms": v.CPUTime.Milliseconds(),
		"samples": v.Samples, "console_lines": v.NewLines, "console": v.SerialLog}
	if !v.Passed {
		err := fmt.Errorf("%w: %s", ErrGuestDied, v.Problem)
		return r.finish(jctx, PhaseFailed, err, r.whereNow(jctx, r.dst))
	}
	r.e.log.Info().Str("vnode", r.req.VNode).Str("from", r.src.hv).Str("to", r.req.To).Int64("migration", r.id).
		Dur("downtime", res.Downtime).Dur("qemu", res.Elapsed).Uint64("bytes", res.DataProcessed).
		Msg("migration done and verified")
	return r.finish(jctx, PhaseDone, nil, r.req.To, detail)
}

// afterFailure decides, from where the guest is now, whether a failed transfer rolled back, moved
// anyway, or lost the guest, and journals it.
func (r *run) afterFailure(ctx, jctx context.Context, merr error) error {
	aborted := ctx.Err() != nil || errors.Is(merr, context.DeadlineExceeded)
	src, dst := r.look(jctx, r.src), r.look(jctx, r.dst)
	switch outcome(src, dst) {
	case rolledBack:
		cause := fmt.Errorf("%w: %w", ErrFailed, merr)
		if aborted {
			cause = fmt.Errorf("%w: %w", ErrAborted, merr)
		}
		return r.finish(jctx, PhaseRolledBack, fmt.Errorf("%w; the guest still runs on %s", cause, r.src.hv), r.src.hv)
	case movedAnyway:
		r.e.log.Warn().Str("vnode", r.req.VNode).Err(merr).Msg("libvirt reported a failure but the guest runs on the destination")
		return r.switchedOver(jctx, r.res.Libvirt, true)
	default:
		if src == absent && dst == absent {
			return r.finish(jctx, PhaseFailed, fmt.Errorf("%w: %w; %w: its domain is gone from %s, where it ran (its QEMU "+
				"died or was destroyed during the transfer), and %s has no copy", ErrFailed, merr, errGuestLost, r.src.hv, r.req.To), "")
		}
		return r.finish(jctx, PhaseFailed, fmt.Errorf("%w: %w; afterwards: %s on %s, %s on %s",
			ErrFailed, merr, src, r.src.hv, dst, r.req.To), r.whereNow(jctx, r.src, r.dst))
	}
}

// finish journals a final phase with err's text, sets the vnodes row (running on hv when done or
// rolled back; failed otherwise, on hv if it is still active there) and records a vnode event.
func (r *run) finish(jctx context.Context, phase Phase, err error, hv string, details ...map[string]any) error {
	detail := map[string]any{"from": r.src.hv, "to": r.req.To, "wall_ms": time.Since(r.start).Milliseconds()}
	for _, d := range details {
		for k, v := range d {
			detail[k] = v
		}
	}
	errText := ""
	if err != nil {
		errText = err.Error()
		detail["error"] = errText
	}
	_ = r.setPhase(jctx, phase, errText, detail) // a failed write is in r.journalErrs
	state, reason, event := "running", "", "migrated"
	switch phase {
	case PhaseRolledBack:
		reason, event = fmt.Sprintf("migration %d to %s rolled back", r.id, r.req.To), "migration-rolled-back"
	case PhaseFailed:
		state, reason, event = "failed", fmt.Sprintf("migration %d to %s failed", r.id, r.req.To), "migration-failed"
	}
	if err := write(jctx, func(ctx context.Context) error {
		return r.e.st.SetVnodeState(ctx, r.req.VNode, state, reason, &hv)
	}); err != nil {
		r.journalFailed(err)
	}
	detail["migration"] = r.id
	if err := write(jctx, func(ctx context.Context) error {
		return r.e.st.VnodeEvent(ctx, r.req.VNode, event, hv, detail)
	}); err != nil {
		r.journalFailed(err)
	}
	if len(r.journalErrs) > 0 {
		jerr := fmt.Errorf("the journal is incomplete: %w", errors.Join(r.journalErrs...))
		if err == nil {
			return &Error{Err: jerr, Hint: fmt.Sprintf("the guest runs on %s; once the database answers again, drover reconcile "+
				"finishes migration %d's row from what libvirt holds", hv, r.id)}
		}
		err = fmt.Errorf("%w (and %v)", err, jerr)
	}
	return err
}

// setPhase journals phase and reports it. A failed write is remembered for the final result.
func (r *run) setPhase(ctx context.Context, phase Phase, errText string, detail map[string]any) error {
	err := r.journal(ctx, phase, errText, detail)
	r.enter(phase, errText)
	return err
}

// journal writes phase to the journal. A failed write is remembered for the final result.
func (r *run) journal(ctx context.Context, phase Phase, errText string, detail map[string]any) error {
	err := write(ctx, func(ctx context.Context) error {
		return r.e.st.SetMigrationPhase(ctx, r.id, string(phase), errText, detail)
	})
	if err != nil {
		r.journalFailed(err)
		r.e.log.Error().Int64("migration", r.id).Str("phase", string(phase)).Err(err).Msg("journal write failed")
	}
	return err
}

// enter makes phase the current one and reports it.
func (r *run) enter(phase Phase, errText string) {
	r.emitMu.Lock()
	r.phase = phase
	r.emitMu.Unlock()
	r.emit(Event{Phase: phase, Err: errText})
}

func (r *run) currentPhase() Phase {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	return r.phase
}

// emit fills in the common fields and calls the progress callback, one call at a time.
func (r *run) emit(ev Event) {
	if r.progress == nil {
		return
	}
	ev.ID, ev.VNode, ev.From, ev.To, ev.Since = r.id, r.req.VNode, r.src.hv, r.req.To, time.Since(r.start)
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.progress(ev)
}

// write runs one journal write, bounded by journalTimeout.
func write(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, journalTimeout)
	defer cancel()
	return fn(ctx)
}

// journalFailed remembers a failed journal write for the final result.
func (r *run) journalFailed(err error) {
	r.emitMu.Lock()
	r.journalErrs = append(r.journalErrs, err)
	r.emitMu.Unlock()
}
