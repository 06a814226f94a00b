package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/fleet"
	"github.com/drover-hpc/drover/internal/slurm"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/migrate"
	"github.com/drover-hpc/drover/scheduler"
)

// The control loop: while this server leads, it wakes on every health event (the NOTIFY the view
// refresh also gets), on every migration it started ending, and every Period; reads the fleet
// and the running vnodes from the database; asks scheduler.Rebalance for a plan; and applies it
// through the migration executor (auto mode) or stores it for an operator (recommend mode).
//
//	NOTIFY drover_health ─┐
//	period ───────────────┼─▶ cycle: view + vnodes → Rebalance → auto: Migrate (one goroutine per
//	migration ended ──────┘          move, within the per-host and cluster-wide limits)
//	                                 recommend: plans table (drover plans / approve / reject)
//
// Nothing sleeps between a health event and the migration it causes: the event wakes the loop,
// which reads, plans and calls Migrate at once. When leadership is lost the loop cancels its
// migrations (the executor aborts them and journals the rollback) and waits for them before it
// may lead again, so no migration is ever left half-owned; a new leader first reconciles the
// journal rows whose owner died.

// Migrator runs live migrations; *migrate.Executor is one.
type Migrator interface {
	Migrate(ctx context.Context, req migrate.Request, progress func(migrate.Event)) (migrate.Result, error)
	Reconcile(ctx context.Context) ([]migrate.Finding, error)
}

// Drainer drains a Slurm node and resumes it; *slurm.Scontrol is one.
type Drainer interface {
	Drain(ctx context.Context, node, reason string) error
	Resume(ctx context.Context, node string) error
}

var (
	_ Migrator = (*migrate.Executor)(nil)
	_ Drainer  = (*slurm.Scontrol)(nil)
)

// Control modes.
const (
	ModeAuto      = "auto"
	ModeRecommend = "recommend"
)

// ControlConfig configures a Controller.
type ControlConfig struct {
	Mode      string        // auto (default) or recommend
	Period    time.Duration // the loop also runs this often (default 10 s)
	Rebalance scheduler.RebalanceConfig
	// MaxPerHypervisor and MaxConcurrent are migration.max_per_hypervisor and
	// migration.max_concurrent: the loop starts no more than these at once (the executor
	// enforces them across processes too). 0 = 1 and 2.
	MaxPerHypervisor, MaxConcurrent int
	// SerialLog gives a vnode's console log path for the executor's verification; nil = none.
	SerialLog func(vnode string) string
	// Instance names this process in plans and logs.
	Instance string
	// Warm, when set, is called (in the background) when the loop starts leading, e.g. to open
	// the executor's libvirt connections so that the first evacuation does not wait for them.
	Warm func(ctx context.Context)
}

// DefaultControlPeriod is how often the loop runs without events.
const DefaultControlPeriod = 10 * time.Second

// Controller plans and applies moves: the server's control loop, and the operator's plan,
// approve, reject, drain and undrain commands.
type Controller struct {
	cfg   ControlConfig
	st    *store.Store
	pool  *pgxpool.Pool
	pipe  *scheduler.Pipeline
	mig   Migrator
	drain Drainer
	log   zerolog.Logger

	wake chan struct{}

	mu       sync.Mutex
	inflight map[string]scheduler.Move // vnode → the move under way
	suspect  map[string]time.Time      // hosts a migration just failed to reach → until when they are avoided
	slurmed  map[string]bool           // hypervisors this loop drained in Slurm
	wg       sync.WaitGroup
}

// NewController returns a controller. drain may be nil (no hypervisor is a Slurm node); mig may
// be nil for a controller that only proposes, lists and decides plans.
func NewController(cfg ControlConfig, pool *pgxpool.Pool, pipe *scheduler.Pipeline, mig Migrator, drain Drainer, log zerolog.Logger) (*Controller, error) {
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeAuto
	case ModeAuto, ModeRecommend:
	default:
		return nil, fmt.Errorf("control: mode %q is not auto or recommend", cfg.Mode)
	}
	if cfg.Period <= 0 {
		cfg.Period = DefaultControlPeriod
	}
	if cfg.MaxPerHypervisor <= 0 {
		cfg.MaxPerHypervisor = 1
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 2
	}
	if pipe == nil {
		return nil, errors.New("control: no placement pipeline")
	}
	if _, err := pipe.Rebalance(nil, nil, cfg.Rebalance, time.Now()); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	return &Controller{cfg: cfg, st: store.New(pool), pool: pool, pipe: pipe, mig: mig, drain: drain,
		log: log.With().Str("component", "control").Logger(), wake: make(chan struct{}, 1),
		inflight: map[string]scheduler.Move{}, suspect: map[string]time.Time{}, slurmed: map[string]bool{}}, nil
}

// Poke wakes the loop now (a health event, a drain, a migration that ended).
func (c *Controller) Poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// view is a fleet reader: the server's (with libvirt reachability) or the database's alone.
type view func(ctx context.Context) ([]scheduler.Host, error)

func (c *Controller) dbView(ctx context.Context) ([]scheduler.Host, error) {
	return fleet.Snapshot(ctx, c.st, fleet.Options{})
}

// run runs the loop whenever leading says so, until ctx ends. changed delivers leadership changes.
func (c *Controller) run(ctx context.Context, leading func() bool, changed <-chan bool, v view) {
	for {
		for !leading() {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-time.After(time.Second):
			}
		}
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); c.lead(lctx, v) }()
	watch:
		for leading() {
			select {
			case <-ctx.Done():
				break watch
			case <-changed:
			case <-time.After(time.Second):
			}
		}
		cancel()
		<-done // its migrations are aborted and journaled before this process may lead again
		if ctx.Err() != nil {
			return
		}
		c.log.Warn().Msg("leadership lost: control loop stopped, its migrations aborted")
	}
}

// lead is the loop of one leadership term.
func (c *Controller) lead(ctx context.Context, v view) {
	defer c.wg.Wait()
	c.log.Info().Str("mode", c.cfg.Mode).Int("aggressiveness", c.cfg.Rebalance.Aggressiveness).Dur("period", c.cfg.Period).
		Msg("control loop leading")
	if c.cfg.Warm != nil {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.cfg.Warm(ctx) }()
	}
	c.reconcile(ctx, true)
	t := time.NewTicker(c.cfg.Period)
	defer t.Stop()
	for {
		if err := c.cycle(ctx, v); err != nil && ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("control cycle")
		}
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-t.C:
			c.reconcile(ctx, false)
		}
	}
}

// reconcile settles journal rows whose owner died (always when this term starts; later only when
// some unfinished row is not one of ours).
func (c *Controller) reconcile(ctx context.Context, always bool) {
	if c.mig == nil {
		return
	}
	if !always {
		rows, err := c.st.UnfinishedMigrations(ctx)
		if err != nil {
			c.log.Warn().Err(err).Msg("read unfinished migrations")
			return
		}
		c.mu.Lock()
		foreign := slices.ContainsFunc(rows, func(u store.Unfinished) bool { _, ours := c.inflight[u.VNode]; return !ours })
		c.mu.Unlock()
		if !foreign {
			return
		}
	}
	found, err := c.mig.Reconcile(ctx)
	if err != nil && ctx.Err() == nil {
		c.log.Warn().Err(err).Msg("reconcile interrupted migrations")
	}
	for _, f := range found {
		if f.Busy {
			continue
		}
		ev := c.log.Info()
		if f.NeedsOperator {
			ev = c.log.Error().Str("hint", f.Hint)
		}
		ev.Int64("migration", f.ID).Str("vnode", f.VNode).Str("runs_on", f.RunsOn).Str("outcome", string(f.Outcome)).
			Str("note", f.Note).Msg("reconciled a migration whose owner died")
	}
}

// vms turns the database's vnodes into the planner's: only running ones may move, and not those
// with a move of ours under way.
func (c *Controller) vms(rows []store.ControlVM, skipInflight bool) []scheduler.VM {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]scheduler.VM, 0, len(rows))
	for _, r := range rows {
		// a booting VM is a VM too: its host failing would lose it (the resume hook marks it
		// booting, and nothing tells drover when its slurmd has registered)
		if r.State != "running" && r.State != "booting" {
			continue
		}
		if _, busy := c.inflight[r.Name]; busy && skipInflight {
			continue
		}
		vm := scheduler.VM{VNode: r.Name, Host: r.Hypervisor, JobID: r.JobID, CPUs: r.CPUs, MemoryMiB: r.MemoryMiB}
		if r.JobEnd != nil {
			vm.JobEnd = *r.JobEnd
		}
		if r.DirtyRate != nil {
			vm.DirtyBytesPerSec = *r.DirtyRate
		}
		if r.LastMigration != nil {
			vm.LastMigrated = *r.LastMigration
		}
		vm.Hints, _ = scheduler.ParseHints(r.Hints...) // written by HintWords: no unknown words
		vm.NoMigrate = vm.Hints.NoMigrate
		out = append(out, vm)
	}
	return out
}

// plan reads the fleet and the vnodes and plans, at now.
func (c *Controller) plan(ctx context.Context, v view, now time.Time) (scheduler.Plan, []scheduler.Host, error) {
	hosts, err := v(ctx)
	if err != nil {
		return scheduler.Plan{}, nil, err
	}
	rows, err := c.st.ControlVMs(ctx)
	if err != nil {
		return scheduler.Plan{}, nil, err
	}
	c.mu.Lock()
	for h, until := range c.suspect {
		if now.After(until) {
			delete(c.suspect, h)
			continue
		}
		for i := range hosts {
			if hosts[i].Name == h {
				hosts[i].Reachable = false // a migration to it just failed: not a target for now
			}
		}
	}
	c.mu.Unlock()
	plan, err := c.pipe.Rebalance(hosts, c.vms(rows, true), c.cfg.Rebalance, now)
	return plan, hosts, err
}

// cycle is one turn of the loop.
func (c *Controller) cycle(ctx context.Context, v view) error {
	decided := time.Now()
	plan, hosts, err := c.plan(ctx, v, decided)
	if err != nil {
		return err
	}
	c.slurmResume(ctx, hosts)
	if names, err := c.st.FinishDrains(ctx); err != nil {
		c.log.Warn().Err(err).Msg("finish drains")
	} else {
		for _, n := range names {
			c.log.Info().Str("hypervisor", n).Msg("drained: no vnode left")
		}
	}
	if len(plan.Moves) == 0 {
		c.log.Debug().Int("skipped", len(plan.Skipped)).Msg("control cycle: nothing to move")
		return nil
	}
	for _, s := range plan.Skipped {
		c.log.Debug().Str("vnode", s.VNode).Str("hypervisor", s.Host).Str("code", s.Code).Msg(s.Why)
	}
	var run, propose []scheduler.Move
	for _, m := range plan.Moves {
		if c.cfg.Mode == ModeAuto || m.Reason == scheduler.MoveDrain {
			run = append(run, m)
		} else {
			propose = append(propose, m)
		}
	}
	if len(propose) > 0 {
		if err := c.propose(ctx, scheduler.Plan{At: plan.At, Moves: propose, Skipped: plan.Skipped}); err != nil {
			return err
		}
	}
	if len(run) > 0 {
		if c.mig == nil {
			return errors.New("no migration executor: cannot apply moves")
		}
		c.slurmDrain(ctx, run)
		c.start(ctx, run, decided)
	}
	return nil
}

// slurmResume resumes in Slurm the hypervisors this loop drained there once they are healthy
// again: active, health ok, no breach predicted.
func (c *Controller) slurmResume(ctx context.Context, hosts []scheduler.Host) {
	if c.drain == nil {
		return
	}
	c.mu.Lock()
	var healthy []string
	for _, h := range hosts {
		if c.slurmed[h.Name] && h.Health == "ok" && h.BreachAt.IsZero() && (h.State == "" || h.State == "active") {
			healthy = append(healthy, h.Name)
		}
	}
	c.mu.Unlock()
	if len(healthy) == 0 {
		return
	}
	nodes, err := c.st.HypervisorSlurmNodes(ctx)
	if err != nil {
		c.log.Warn().Err(err).Msg("read slurm nodes of hypervisors")
		return
	}
	for _, hv := range healthy {
		if node, ok := nodes[hv]; ok {
			if err := c.resumeNode(ctx, hv, node); err != nil {
				continue // drained it stays; tried again next cycle
			}
		}
		c.mu.Lock()
		delete(c.slurmed, hv)
		c.mu.Unlock()
	}
}

func (c *Controller) resumeNode(ctx context.Context, hv, node string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := c.drain.Resume(rctx, node); err != nil {
		c.log.Warn().Str("hypervisor", hv).Str("slurm_node", node).Err(err).Msg("resume in Slurm")
		return err
	}
	c.log.Info().Str("hypervisor", hv).Str("slurm_node", node).Msg("healthy again: resumed in Slurm")
	return nil
}

// slurmDrain drains, once per episode, the evacuated hypervisors that are Slurm nodes.
func (c *Controller) slurmDrain(ctx context.Context, moves []scheduler.Move) {
	if c.drain == nil {
		return
	}
	nodes, err := c.st.HypervisorSlurmNodes(ctx)
	if err != nil || len(nodes) == 0 {
		if err != nil {
			c.log.Warn().Err(err).Msg("read slurm nodes of hypervisors")
		}
		return
	}
	for _, m := range moves {
		if m.Reason != scheduler.MoveEvacuation && m.Reason != scheduler.MoveDrain {
			continue
		}
		node, ok := nodes[m.From]
		c.mu.Lock()
		done := c.slurmed[m.From]
		c.slurmed[m.From] = true
		c.mu.Unlock()
		if !ok || done {
			continue
		}
		go func(hv, node, why string) { // beside the migrations, never before them
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			reason := "drover " + why
			if len(reason) > 200 {
				reason = reason[:200]
			}
			if err := c.drain.Drain(dctx, node, reason); err != nil {
				c.log.Warn().Str("hypervisor", hv).Str("slurm_node", node).Err(err).Msg("drain in Slurm")
				c.mu.Lock()
				delete(c.slurmed, hv)
				c.mu.Unlock()
				return
			}
			c.log.Info().Str("hypervisor", hv).Str("slurm_node", node).Msg("drained in Slurm")
		}(m.From, node, m.Reason+": "+strings.SplitN(m.Why, ";", 2)[0])
	}
}

// start launches the moves the limits allow, in priority order; the others wait for a later
// cycle (the end of a migration wakes the loop).
func (c *Controller) start(ctx context.Context, moves []scheduler.Move, decided time.Time) {
	var triggers map[string]store.Trigger
	var sources []string
	for _, m := range moves {
		if m.Reason == scheduler.MoveEvacuation && !slices.Contains(sources, m.From) {
			sources = append(sources, m.From)
		}
	}
	c.mu.Lock()
	busy := map[string]int{}
	for _, m := range c.inflight {
		busy[m.From]++
		busy[m.To]++
	}
	total := len(c.inflight)
	var launch []scheduler.Move
	for _, m := range moves {
		if _, ok := c.inflight[m.VNode]; ok {
			continue
		}
		if total >= c.cfg.MaxConcurrent {
			break
		}
		if busy[m.From] >= c.cfg.MaxPerHypervisor || busy[m.To] >= c.cfg.MaxPerHypervisor {
			c.log.Debug().Str("vnode", m.VNode).Str("from", m.From).Str("to", m.To).Msg("waits for a migration slot")
			continue
		}
		busy[m.From]++
		busy[m.To]++
		total++
		c.inflight[m.VNode] = m
		launch = append(launch, m)
	}
	c.mu.Unlock()
	if len(launch) == 0 {
		return
	}
	if len(sources) > 0 {
		var err error
		if triggers, err = c.st.NewestHealthEvents(ctx, sources); err != nil {
			c.log.Warn().Err(err).Msg("read triggering health events")
		}
	}
	for _, m := range launch {
		rec := store.ControlRecord{DecidedAt: decided}
		if t, ok := triggers[m.From]; ok && m.Reason == scheduler.MoveEvacuation {
			rec.EventID = t.EventID
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer c.Poke()
			_ = c.execute(ctx, m, rec)
			c.mu.Lock()
			delete(c.inflight, m.VNode)
			c.mu.Unlock()
		}()
	}
}

// execute runs one move and records what the loop knows in its journal row.
func (c *Controller) execute(ctx context.Context, m scheduler.Move, rec store.ControlRecord) error {
	log := c.log.With().Str("vnode", m.VNode).Str("from", m.From).Str("to", m.To).Str("reason", m.Reason).Logger()
	log.Info().Str("why", m.Why).Dur("estimate", m.EstDuration).Msg("move starting")
	req := migrate.Request{VNode: m.VNode, To: m.To, Reason: m.Reason}
	if c.cfg.SerialLog != nil {
		req.SerialLog = c.cfg.SerialLog(m.VNode)
	}
	res, err := c.mig.Migrate(ctx, req, nil)
	if res.ID != 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		lat, rerr := c.st.RecordControl(rctx, res.ID, rec)
		cancel()
		ev := log.Info().Int64("migration", res.ID).Str("phase", string(res.Phase)).Dur("wall", res.Wall).Dur("first_byte", res.FirstByte)
		if lat.FromEvent != nil {
			ev = ev.Int64("trigger_event", rec.EventID).Dur("trigger_to_first_byte", *lat.FromEvent)
		}
		if lat.FromDecision != nil {
			ev = ev.Dur("decided_to_first_byte", *lat.FromDecision)
		}
		if rerr != nil {
			log.Warn().Err(rerr).Msg("record control data")
		}
		ev.Msg("move ended")
	}
	switch {
	case err == nil:
	case errors.Is(err, migrate.ErrLimit), errors.Is(err, store.ErrMigrationActive):
		log.Info().Err(err).Msg("move refused for now: retried next cycle")
	default:
		log.Warn().Err(err).Msg("move did not succeed")
		var me *migrate.Error
		if errors.As(err, &me) && (errors.Is(err, migrate.ErrUnreachable) || errors.Is(err, migrate.ErrFailed) ||
			errors.Is(err, migrate.ErrGuestDied)) {
			c.mu.Lock()
			c.suspect[m.To] = time.Now().Add(max(3*c.cfg.Period, 30*time.Second))
			c.mu.Unlock()
		}
	}
	return err
}

// propose stores moves as a pending plan, unless the same moves are already pending; a new plan
// supersedes the pending ones.
func (c *Controller) propose(ctx context.Context, plan scheduler.Plan) error {
	pending, err := c.st.PendingPlans(ctx)
	if err != nil {
		return err
	}
	fp := fingerprint(plan.Moves)
	for _, p := range pending {
		var ms []scheduler.Move
		if json.Unmarshal(p.Actions, &ms) == nil && fingerprint(ms) == fp {
			return nil // already proposed
		}
	}
	id, err := c.st.InsertPlan(ctx, plan.Kind(), plan.Summary(), plan.Moves, c.cfg.Instance)
	if err != nil {
		return err
	}
	old, err := c.st.SupersedePlans(ctx, id, c.cfg.Instance)
	if err != nil {
		return err
	}
	c.log.Info().Int64("plan", id).Str("kind", plan.Kind()).Int("moves", len(plan.Moves)).Interface("superseded", old).
		Str("summary", plan.Summary()).Msg("plan proposed: drover plans, drover approve ID")
	return nil
}

// fingerprint identifies a set of moves by what moves where, whatever the order and estimates.
func fingerprint(ms []scheduler.Move) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.VNode + ":" + m.From + ">" + m.To + ":" + m.Reason
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// ErrStalePlan: the plan no longer matches the cluster; it was marked stale.
var ErrStalePlan = errors.New("plan is stale")

// MoveOutcome is what became of one move of an approved plan.
type MoveOutcome struct {
	Move      scheduler.Move
	Migration int64 // journal id; 0 when refused before journaling
	Err       error
}

// Approve re-validates pending plan id against the cluster now and, when every move still holds,
// runs its moves in order and records the outcome; by names the operator. A plan that no longer
// holds is marked stale with the reason and ErrStalePlan returned. progress, if not nil, gets
// each move's outcome as it ends.
func (c *Controller) Approve(ctx context.Context, id int64, by string, progress func(MoveOutcome)) ([]MoveOutcome, error) {
	if c.mig == nil {
		return nil, errors.New("approve: no migration executor")
	}
	p, err := c.st.GetPlan(ctx, id)
	if err != nil {
		return nil, err
	}
	var moves []scheduler.Move
	if err := json.Unmarshal(p.Actions, &moves); err != nil {
		return nil, fmt.Errorf("plan %d: its actions are not moves: %w", id, err)
	}
	// claim it first, so that two approvals (or an approval and a supersession) cannot both run it
	if err := c.st.DecidePlan(ctx, id, "approved", by, ""); err != nil {
		return nil, err
	}
	now := time.Now()
	problems, err := c.check(ctx, moves, now)
	if err != nil {
		_ = c.finishPlan(id, "failed", "could not re-validate: "+err.Error())
		return nil, fmt.Errorf("plan %d: re-validate: %w", id, err)
	}
	var stale []string
	for i, pr := range problems {
		if pr != "" {
			stale = append(stale, fmt.Sprintf("move %d (%s %s→%s): %s", i+1, moves[i].VNode, moves[i].From, moves[i].To, pr))
		}
	}
	if len(stale) > 0 {
		outcome := strings.Join(stale, "; ")
		if err := c.finishPlan(id, "stale", outcome); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("plan %d: %w: %s", id, ErrStalePlan, outcome)
	}
	var outs []MoveOutcome
	var lines []string
	failed := false
	for _, m := range moves {
		if ctx.Err() != nil {
			lines = append(lines, fmt.Sprintf("%s: not started (%v)", m.VNode, ctx.Err()))
			failed = true
			continue
		}
		req := migrate.Request{VNode: m.VNode, To: m.To, Reason: m.Reason}
		if c.cfg.SerialLog != nil {
			req.SerialLog = c.cfg.SerialLog(m.VNode)
		}
		res, err := c.mig.Migrate(ctx, req, nil)
		o := MoveOutcome{Move: m, Migration: res.ID, Err: err}
		if res.ID != 0 {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if _, rerr := c.st.RecordControl(rctx, res.ID, store.ControlRecord{DecidedAt: now, PlanID: id}); rerr != nil {
				c.log.Warn().Err(rerr).Msg("record plan of migration")
			}
			cancel()
		}
		if err != nil {
			failed = true
			lines = append(lines, fmt.Sprintf("%s %s→%s: %v (migration %d)", m.VNode, m.From, m.To, err, res.ID))
		} else {
			lines = append(lines, fmt.Sprintf("%s %s→%s: done (migration %d)", m.VNode, m.From, m.To, res.ID))
		}
		outs = append(outs, o)
		if progress != nil {
			progress(o)
		}
	}
	state := "applied"
	if failed {
		state = "failed"
	}
	if err := c.finishPlan(id, state, strings.Join(lines, "; ")); err != nil {
		return outs, err
	}
	if failed {
		return outs, fmt.Errorf("plan %d failed: %s", id, strings.Join(lines, "; "))
	}
	return outs, nil
}

// finishPlan records a plan's end even when the caller's context is gone.
func (c *Controller) finishPlan(id int64, state, outcome string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.st.FinishPlan(ctx, id, state, outcome)
}

// check re-validates moves against the database's view now.
func (c *Controller) check(ctx context.Context, moves []scheduler.Move, now time.Time) ([]string, error) {
	hosts, err := c.dbView(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.st.ControlVMs(ctx)
	if err != nil {
		return nil, err
	}
	return c.pipe.Check(hosts, c.vms(rows, false), moves, now)
}

// Reject marks pending plan id rejected by by, with reason.
func (c *Controller) Reject(ctx context.Context, id int64, by, reason string) error {
	if strings.TrimSpace(reason) == "" {
		reason = "rejected by an operator"
	}
	return c.st.DecidePlan(ctx, id, "rejected", by, reason)
}

// Plans returns the newest limit plans (pending ones only unless all).
func (c *Controller) Plans(ctx context.Context, limit int, all bool) ([]store.Plan, error) {
	return c.st.ListPlans(ctx, limit, !all)
}

// Drain sets hypervisor hv draining: the leading server's loop evacuates it (reason drain) and
// marks it drained once empty; placement already avoids it. It returns the state it had.
func (c *Controller) Drain(ctx context.Context, hv, by string) (string, error) {
	old, err := c.st.SetHypervisorState(ctx, hv, "draining", "drover drain by "+by)
	if err != nil {
		return "", err
	}
	c.notify(ctx, hv, "drain")
	return old, nil
}

// Undrain sets hypervisor hv active again and returns the state it had.
func (c *Controller) Undrain(ctx context.Context, hv, by string) (string, error) {
	old, err := c.st.SetHypervisorState(ctx, hv, "active", "drover undrain by "+by)
	if err != nil {
		return "", err
	}
	if c.drain != nil {
		if nodes, err := c.st.HypervisorSlurmNodes(ctx); err == nil {
			if node, ok := nodes[hv]; ok {
				if err := c.resumeNode(ctx, hv, node); err != nil {
					return old, fmt.Errorf("%s is active for drover, but Slurm did not resume %s: %w (scontrol update NodeName=%s State=RESUME)", hv, node, err, node)
				}
			}
		}
		c.mu.Lock()
		delete(c.slurmed, hv)
		c.mu.Unlock()
	}
	c.notify(ctx, hv, "undrain")
	return old, nil
}

// notify wakes the leading server's loop (it LISTENs on drover_health) after an operator action.
func (c *Controller) notify(ctx context.Context, hv, kind string) {
	payload, _ := json.Marshal(map[string]string{"kind": kind, "hypervisor": hv})
	if err := c.st.NotifyControl(ctx, string(payload)); err != nil {
		c.log.Debug().Err(err).Msg("notify the server")
	}
}

// DrainProgress returns hv's state and the vnodes still on it.
func (c *Controller) DrainProgress(ctx context.Context, hv string) (store.Drain, error) {
	return c.st.DrainProgress(ctx, hv)
}
