// Package store is drover's typed access to its PostgreSQL tables: hypervisors, vnodes, jobs,
// placements and the migration journal. Every statement is a named query from sql/queries; this
// package only binds parameters and scans rows. It holds no decisions.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/sql/queries"
)

var q = queries.MustLoad()

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// DB is what the store needs: a pool or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var _ DB = (*pgxpool.Pool)(nil)

// Store wraps a database handle.
type Store struct {
	db DB
	// hosts is how many rows the last HostsState read: the next one allocates for that many
	// at once.
	hosts atomic.Int64
}

// New returns a store on db.
func New(db DB) *Store { return &Store{db: db} }

// SyncHypervisors makes the hypervisors and bmcs tables match the configuration (adding and
// updating; hypervisors removed from the configuration are kept for history).
func (s *Store) SyncHypervisors(ctx context.Context, hs []config.Hypervisor) error {
	for _, h := range hs {
		var id int
		err := s.db.QueryRow(ctx, q.Get("UpsertHypervisor"), h.Name, h.URI, h.MigrationURI).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) { // unchanged: the upsert's WHERE skipped the update
			err = s.db.QueryRow(ctx, q.Get("HypervisorID"), h.Name).Scan(&id)
		}
		if err != nil {
			return fmt.Errorf("record hypervisor %s: %w", h.Name, err)
		}
		if h.BMC.Host == "" && h.BMC.Interface != "open" {
			continue
		}
		iface := h.BMC.Interface
		if iface == "" {
			iface = "lanplus"
		}
		port := h.BMC.Port
		if port == 0 {
			port = 623
		}
		host := h.BMC.Host
		if host == "" {
			host = "localhost"
		}
		if _, err := s.db.Exec(ctx, q.Get("UpsertBMC"), id, host, port, iface, h.BMC.Username, h.BMC.CipherSuite); err != nil {
			return fmt.Errorf("record BMC of %s: %w", h.Name, err)
		}
	}
	return nil
}

// Vnode is a vnode's row.
type Vnode struct {
	Name, State, Reason string
	Hypervisor          string // "" when it runs nowhere
	DomainUUID          *[16]byte
	JobID               *int64
	UpdatedAt           time.Time
}

// GetVnode returns the vnode's row, or ErrNotFound.
func (s *Store) GetVnode(ctx context.Context, name string) (Vnode, error) {
	var v Vnode
	err := s.db.QueryRow(ctx, q.Get("GetVnode"), name).Scan(&v.Name, &v.State, &v.Reason, &v.Hypervisor, &v.DomainUUID, &v.JobID, &v.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("vnode %s: %w", name, ErrNotFound)
	}
	return v, err
}

// Boot records that a vnode's VM was started on hypervisor.
type Boot struct {
	Name       string
	Address    netip.Prefix
	MAC        string
	CPUs       int
	MemoryMiB  int64
	Hypervisor string
	DomainUUID string // libvirt's UUID text; "" when unknown
	JobID      *int64
}

// VnodeBooting records a boot.
func (s *Store) VnodeBooting(ctx context.Context, b Boot) error {
	var addr any
	if b.Address.IsValid() {
		addr = b.Address.Addr().String()
	}
	var mac any
	if b.MAC != "" {
		mac = b.MAC
	}
	_, err := s.db.Exec(ctx, q.Get("VnodeBooting"), b.Name, addr, mac, b.CPUs, b.MemoryMiB, b.Hypervisor, b.DomainUUID, b.JobID)
	if err != nil {
		return fmt.Errorf("record boot of %s: %w", b.Name, err)
	}
	return nil
}

// SetVnodeState sets a vnode's state and reason. hypervisor is where it now runs: nil leaves it as
// it is, "" clears it.
func (s *Store) SetVnodeState(ctx context.Context, name, state, reason string, hypervisor *string) error {
	if _, err := s.db.Exec(ctx, q.Get("EnsureVnode"), name); err != nil {
		return fmt.Errorf("record vnode %s: %w", name, err)
	}
	if _, err := s.db.Exec(ctx, q.Get("SetVnodeState"), name, state, reason, hypervisor); err != nil {
		return fmt.Errorf("set state of %s to %s: %w", name, state, err)
	}
	return nil
}

// VnodesRunning marks booting vnodes as running for job jobID.
func (s *Store) VnodesRunning(ctx context.Context, names []string, jobID int64) error {
	if _, err := s.db.Exec(ctx, q.Get("VnodesRunning"), names, jobID); err != nil {
		return fmt.Errorf("mark %v running: %w", names, err)
	}
	return nil
}

// VnodeEvent appends to a vnode's history; detail is stored as JSON.
func (s *Store) VnodeEvent(ctx context.Context, vnode, event, hypervisor string, detail any) error {
	b, err := json.Marshal(orEmpty(detail))
	if err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, q.Get("InsertVnodeEvent"), vnode, event, hypervisor, b); err != nil {
		return fmt.Errorf("record %s event of %s: %w", event, vnode, err)
	}
	return nil
}

// VnodeVanished records a vnode whose VM is on no hypervisor: when its row still says state on
// hypervisor ("" = none), as the caller read it, the row becomes failed with reason and a
// "vanished" event with detail is appended, both in one statement. It reports false, writing
// nothing, when the row had changed meanwhile (the VM was booted again, or is migrating).
func (s *Store) VnodeVanished(ctx context.Context, name, state, hypervisor, reason string, detail any) (bool, error) {
	b, err := json.Marshal(orEmpty(detail))
	if err != nil {
		return false, err
	}
	tag, err := s.db.Exec(ctx, q.Get("VnodeVanished"), name, state, hypervisor, reason, b)
	if err != nil {
		return false, fmt.Errorf("record vnode %s as vanished: %w", name, err)
	}
	return tag.RowsAffected() == 1, nil
}

// LiveVnode is a vnode recorded booting or running, and where.
type LiveVnode struct{ Name, State, Hypervisor string }

// LiveVnodes lists the vnodes recorded booting or running, by name.
func (s *Store) LiveVnodes(ctx context.Context) ([]LiveVnode, error) {
	rows, err := s.db.Query(ctx, q.Get("LiveVnodes"))
	if err != nil {
		return nil, fmt.Errorf("list live vnodes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LiveVnode, error) {
		var v LiveVnode
		return v, r.Scan(&v.Name, &v.State, &v.Hypervisor)
	})
	if err != nil {
		return nil, fmt.Errorf("list live vnodes: %w", err)
	}
	return out, nil
}

func orEmpty(v any) any {
	if v == nil {
		return map[string]any{}
	}
	return v
}

// Job is what the job hooks record.
type Job struct {
	ID          int64
	Name, User  string
	Account     string
	Partition   string
	Nodes       []string
	CPUs        *int
	MemoryMiB   *int64
	Constraints string
	TimeLimit   *time.Duration
	Hints       []string
	SubmittedAt *time.Time
	StartedAt   *time.Time
	State       string
	ExitCode    *int
	EndedAt     *time.Time
}

// JobStarted records a job that is starting.
func (s *Store) JobStarted(ctx context.Context, j Job) error {
	if j.Nodes == nil {
		j.Nodes = []string{}
	}
	if j.Hints == nil {
		j.Hints = []string{}
	}
	_, err := s.db.Exec(ctx, q.Get("JobStarted"), j.ID, j.Name, j.User, j.Account, j.Partition, j.Nodes,
		j.CPUs, j.MemoryMiB, j.Constraints, j.TimeLimit, j.Hints, j.SubmittedAt, j.StartedAt)
	if err != nil {
		return fmt.Errorf("record start of job %d: %w", j.ID, err)
	}
	return nil
}

// JobEnded records the end of a job with its state and exit code.
func (s *Store) JobEnded(ctx context.Context, j Job) error {
	if j.Nodes == nil {
		j.Nodes = []string{}
	}
	_, err := s.db.Exec(ctx, q.Get("JobEnded"), j.ID, j.Name, j.User, j.Partition, j.Nodes, j.State, j.ExitCode)
	if err != nil {
		return fmt.Errorf("record end of job %d: %w", j.ID, err)
	}
	return nil
}

// GetJob returns a job's row, or ErrNotFound.
func (s *Store) GetJob(ctx context.Context, id int64) (Job, error) {
	var j Job
	err := s.db.QueryRow(ctx, q.Get("GetJob"), id).Scan(&j.ID, &j.Name, &j.User, &j.Partition, &j.Nodes, &j.State,
		&j.ExitCode, &j.TimeLimit, &j.Hints, &j.StartedAt, &j.EndedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return j, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	return j, err
}

// Placement is one placement decision.
type Placement struct {
	VNode      string
	JobID      *int64
	Hypervisor string // "" when nothing fits
	Outcome    string // placed, unplaceable, failed
	Policy     string
	Seed       *int64
	Reason     string
	Explain    any // stored as JSON
}

// InsertPlacement records a decision and returns its id.
func (s *Store) InsertPlacement(ctx context.Context, p Placement) (int64, error) {
	b, err := json.Marshal(orEmpty(p.Explain))
	if err != nil {
		return 0, err
	}
	var id int64
	err = s.db.QueryRow(ctx, q.Get("InsertPlacement"), p.VNode, p.JobID, p.Hypervisor, p.Outcome, p.Policy, p.Seed, p.Reason, b).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("record placement of %s: %w", p.VNode, err)
	}
	return id, nil
}
