package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ControlVM is a vnode as the control loop reads it (sql/queries/plans.sql ControlVMs).
type ControlVM struct {
	Name, Hypervisor, State string
	CPUs                    int
	MemoryMiB               int64
	JobID                   int64      // 0 = none
	JobEnd                  *time.Time // start + time limit of its running job; nil = unknown or unlimited
	Hints                   []string   // the job's drover hints, e.g. drover:no-migrate
	DirtyRate               *float64   // bytes/s, newest sample; nil = never measured
	LastMigration           *time.Time // last migration or attempt; nil = never
}

// ControlVMs returns every booting, running or migrating vnode, by name.
func (s *Store) ControlVMs(ctx context.Context) ([]ControlVM, error) {
	rows, err := s.db.Query(ctx, q.Get("ControlVMs"))
	if err != nil {
		return nil, fmt.Errorf("read vnodes for the control loop: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ControlVM, error) {
		var v ControlVM
		err := r.Scan(&v.Name, &v.Hypervisor, &v.State, &v.CPUs, &v.MemoryMiB, &v.JobID, &v.JobEnd, &v.Hints,
			&v.DirtyRate, &v.LastMigration)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("read vnodes for the control loop: %w", err)
	}
	return out, nil
}

// HypervisorSlurmNodes maps each hypervisor that is itself a Slurm node to its node name.
func (s *Store) HypervisorSlurmNodes(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.Query(ctx, q.Get("HypervisorSlurmNodes"))
	if err != nil {
		return nil, fmt.Errorf("read slurm nodes of hypervisors: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, node string
		if err := rows.Scan(&name, &node); err != nil {
			return nil, fmt.Errorf("read slurm nodes of hypervisors: %w", err)
		}
		out[name] = node
	}
	return out, rows.Err()
}

// Trigger is the health event that made a host an evacuation source.
type Trigger struct {
	EventID int64
	At      time.Time
}

// NewestHealthEvents returns, per named hypervisor, its newest warning, critical or prediction
// event. Hosts without one are absent.
func (s *Store) NewestHealthEvents(ctx context.Context, hosts []string) (map[string]Trigger, error) {
	rows, err := s.db.Query(ctx, q.Get("NewestHealthEvents"), hosts)
	if err != nil {
		return nil, fmt.Errorf("read triggering health events: %w", err)
	}
	defer rows.Close()
	out := map[string]Trigger{}
	for rows.Next() {
		var name string
		var t Trigger
		if err := rows.Scan(&name, &t.EventID, &t.At); err != nil {
			return nil, fmt.Errorf("read triggering health events: %w", err)
		}
		out[name] = t
	}
	return out, rows.Err()
}

// ControlRecord is what the control loop adds to a migration's journal row.
type ControlRecord struct {
	EventID   int64     // the triggering health event; 0 = none
	DecidedAt time.Time // when the loop decided the move
	PlanID    int64     // the approved plan; 0 = none
}

// Latency is a migration's first byte measured from its trigger and from the decision; nil when
// either end is unknown.
type Latency struct {
	FromEvent, FromDecision *time.Duration
}

// RecordControl stores r in migration id's row (params and plan_id) and returns the latencies to
// the row's first byte.
func (s *Store) RecordControl(ctx context.Context, id int64, r ControlRecord) (Latency, error) {
	var ev, plan *int64
	if r.EventID != 0 {
		ev = &r.EventID
	}
	if r.PlanID != 0 {
		plan = &r.PlanID
	}
	var fromEvent, fromDecision *float64
	err := s.db.QueryRow(ctx, q.Get("RecordControl"), id, ev, r.DecidedAt, plan).Scan(&fromEvent, &fromDecision)
	if errors.Is(err, pgx.ErrNoRows) {
		return Latency{}, fmt.Errorf("migration %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Latency{}, fmt.Errorf("migration %d: record control data: %w", id, err)
	}
	return Latency{msDuration(fromEvent), msDuration(fromDecision)}, nil
}

func msDuration(ms *float64) *time.Duration {
	if ms == nil {
		return nil
	}
	d := time.Duration(*ms * float64(time.Millisecond))
	return &d
}

// SetHypervisorState sets a hypervisor's administrative state (active, draining, drained,
// maintenance, down) and reason, and returns the state it had. An unknown name gives ErrNotFound
// naming the hypervisors that exist.
func (s *Store) SetHypervisorState(ctx context.Context, name, state, reason string) (string, error) {
	var old string
	err := s.db.QueryRow(ctx, q.Get("SetHypervisorState"), name, state, reason).Scan(&old)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", s.unknownHypervisor(ctx, name)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23514" { // check_violation
		return "", fmt.Errorf("hypervisor %s: %q is not a state (active, draining, drained, maintenance, down)", name, state)
	}
	if err != nil {
		return "", fmt.Errorf("set state of hypervisor %s: %w", name, err)
	}
	return old, nil
}

func (s *Store) unknownHypervisor(ctx context.Context, name string) error {
	names, err := s.HypervisorNames(ctx)
	if err != nil {
		return fmt.Errorf("hypervisor %q: %w", name, ErrNotFound)
	}
	known := "none"
	if len(names) > 0 {
		known = fmt.Sprint(names)
	}
	return fmt.Errorf("hypervisor %q: %w (known: %s)", name, ErrNotFound, known)
}

// FinishDrains marks draining hypervisors that hold nothing any more as drained and returns them.
func (s *Store) FinishDrains(ctx context.Context) ([]string, error) {
	rows, err := s.db.Query(ctx, q.Get("FinishDrains"))
	if err != nil {
		return nil, fmt.Errorf("finish drains: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("finish drains: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// Drain is a hypervisor's state and the vnodes still on it.
type Drain struct {
	State, Reason string
	VNodes        []string // name (state), by name
}

// DrainProgress returns hypervisor name's state and the vnodes still on it; an unknown name gives
// ErrNotFound naming the hypervisors that exist.
func (s *Store) DrainProgress(ctx context.Context, name string) (Drain, error) {
	rows, err := s.db.Query(ctx, q.Get("DrainProgress"), name)
	if err != nil {
		return Drain{}, fmt.Errorf("drain progress of %s: %w", name, err)
	}
	defer rows.Close()
	var d Drain
	found := false
	for rows.Next() {
		var vn, vs *string
		if err := rows.Scan(&d.State, &d.Reason, &vn, &vs); err != nil {
			return Drain{}, fmt.Errorf("drain progress of %s: %w", name, err)
		}
		found = true
		if vn != nil {
			d.VNodes = append(d.VNodes, fmt.Sprintf("%s (%s)", *vn, *vs))
		}
	}
	if err := rows.Err(); err != nil {
		return Drain{}, fmt.Errorf("drain progress of %s: %w", name, err)
	}
	if !found {
		return Drain{}, s.unknownHypervisor(ctx, name)
	}
	return d, nil
}

// Plan is a row of the plans table: an operator plan of recommend-only mode.
type Plan struct {
	ID         int64
	CreatedAt  time.Time
	Kind       string // evacuation, rebalance, consolidation, drain
	State      string // pending (proposed), approved, rejected, applied, stale, failed
	Reason     string // why it was proposed
	Actions    json.RawMessage
	DecidedBy  string
	DecidedAt  *time.Time
	Outcome    string // what became of it
	ProposedBy string
}

func scanPlan(r pgx.CollectableRow) (Plan, error) {
	var p Plan
	err := r.Scan(&p.ID, &p.CreatedAt, &p.Kind, &p.State, &p.Reason, &p.Actions, &p.DecidedBy, &p.DecidedAt, &p.Outcome, &p.ProposedBy)
	return p, err
}

// InsertPlan stores a proposed plan; actions is stored as JSON. It returns the plan's id.
func (s *Store) InsertPlan(ctx context.Context, kind, reason string, actions any, proposedBy string) (int64, error) {
	b, err := json.Marshal(actions)
	if err != nil {
		return 0, err
	}
	var id int64
	var at time.Time
	if err := s.db.QueryRow(ctx, q.Get("InsertPlan"), kind, reason, b, proposedBy).Scan(&id, &at); err != nil {
		return 0, fmt.Errorf("store plan: %w", err)
	}
	return id, nil
}

// PendingPlans returns the plans waiting for an operator, oldest first.
func (s *Store) PendingPlans(ctx context.Context) ([]Plan, error) {
	rows, err := s.db.Query(ctx, q.Get("PendingPlans"))
	if err != nil {
		return nil, fmt.Errorf("read pending plans: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanPlan)
	if err != nil {
		return nil, fmt.Errorf("read pending plans: %w", err)
	}
	return out, nil
}

// SupersedePlans marks every pending plan but keep stale ("superseded by plan keep") and returns
// their ids.
func (s *Store) SupersedePlans(ctx context.Context, keep int64, by string) ([]int64, error) {
	rows, err := s.db.Query(ctx, q.Get("SupersedePlans"), keep, by)
	if err != nil {
		return nil, fmt.Errorf("supersede plans: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("supersede plans: %w", err)
	}
	return ids, nil
}

// ListPlans returns the newest limit plans, newest first; pendingOnly keeps the pending ones.
func (s *Store) ListPlans(ctx context.Context, limit int, pendingOnly bool) ([]Plan, error) {
	rows, err := s.db.Query(ctx, q.Get("ListPlans"), limit, pendingOnly)
	if err != nil {
		return nil, fmt.Errorf("read plans: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanPlan)
	if err != nil {
		return nil, fmt.Errorf("read plans: %w", err)
	}
	return out, nil
}

// GetPlan returns plan id; an unknown id gives ErrNotFound naming the newest plans that exist.
func (s *Store) GetPlan(ctx context.Context, id int64) (Plan, error) {
	rows, err := s.db.Query(ctx, q.Get("GetPlan"), id)
	if err != nil {
		return Plan{}, fmt.Errorf("read plan %d: %w", id, err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanPlan)
	if errors.Is(err, pgx.ErrNoRows) {
		known := "none"
		if ps, lerr := s.ListPlans(ctx, 10, false); lerr == nil && len(ps) > 0 {
			ids := make([]int64, len(ps))
			for i, p := range ps {
				ids[i] = p.ID
			}
			known = fmt.Sprintf("newest %v", ids)
		}
		return Plan{}, fmt.Errorf("plan %d: %w (plans: %s; see drover plans --all)", id, ErrNotFound, known)
	}
	if err != nil {
		return Plan{}, fmt.Errorf("read plan %d: %w", id, err)
	}
	return p, nil
}

// ErrPlanDecided: the plan is no longer pending (someone decided it first).
var ErrPlanDecided = errors.New("plan is not pending")

// DecidePlan moves a pending plan to state (approved, rejected or stale) with by and outcome. A
// plan that is not pending (any more) gives ErrPlanDecided saying what it is.
func (s *Store) DecidePlan(ctx context.Context, id int64, state, by, outcome string) error {
	var got int64
	err := s.db.QueryRow(ctx, q.Get("DecidePlan"), id, state, by, outcome).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		p, gerr := s.GetPlan(ctx, id)
		if gerr != nil {
			return gerr
		}
		who := ""
		if p.DecidedBy != "" {
			who = " by " + p.DecidedBy
		}
		return fmt.Errorf("plan %d: %w: it is %s%s (%s)", id, ErrPlanDecided, p.State, who, p.Outcome)
	}
	if err != nil {
		return fmt.Errorf("plan %d: set %s: %w", id, state, err)
	}
	return nil
}

// FinishPlan records how an approved plan ended: applied or failed, with its outcome.
func (s *Store) FinishPlan(ctx context.Context, id int64, state, outcome string) error {
	if _, err := s.db.Exec(ctx, q.Get("FinishPlan"), id, state, outcome); err != nil {
		return fmt.Errorf("plan %d: set %s: %w", id, state, err)
	}
	return nil
}

// NotifyControl wakes the leading server's control loop with payload (JSON text).
func (s *Store) NotifyControl(ctx context.Context, payload string) error {
	if _, err := s.db.Exec(ctx, q.Get("NotifyControl"), payload); err != nil {
		return fmt.Errorf("notify the server: %w", err)
	}
	return nil
}
