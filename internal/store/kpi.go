package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file reads the KPI dashboards of sql/queries/kpi.sql (and HostsOverview of dashboard.sql):
// what the agents' samples and health events say about the hypervisors.

// UnknownHostError says a hypervisor name is not in the database and which ones are. It
// matches ErrNotFound.
type UnknownHostError struct {
	Name  string
	Known []string
}

func (e *UnknownHostError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("no hypervisor named %q (none recorded)", e.Name)
	}
	return fmt.Sprintf("no hypervisor named %q (known: %s)", e.Name, strings.Join(e.Known, ", "))
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *UnknownHostError) Is(target error) bool { return target == ErrNotFound }

// HypervisorNames returns every hypervisor's name, sorted.
func (s *Store) HypervisorNames(ctx context.Context) ([]string, error) {
	rows, err := s.db.Query(ctx, q.Get("HypervisorNames"))
	if err != nil {
		return nil, fmt.Errorf("hypervisor names: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("hypervisor names: %w", err)
	}
	return names, nil
}

// CheckHost returns nil when host is a recorded hypervisor, and otherwise an
// *UnknownHostError listing the known ones.
func (s *Store) CheckHost(ctx context.Context, host string) error {
	names, err := s.HypervisorNames(ctx)
	if err != nil {
		return err
	}
	if slices.Contains(names, host) {
		return nil
	}
	return &UnknownHostError{Name: host, Known: names}
}

// HostOverview is one row of HostsOverview: a hypervisor, its health and what it runs.
type HostOverview struct {
	Host, State string
	Health      string // ok, warning, critical, unknown
	WorstSensor string
	Vnodes      int64 // booting, running or migrating
	VnodeMemMiB int64
}

// HostsOverview returns every hypervisor with its state, health and vnodes, by name.
func (s *Store) HostsOverview(ctx context.Context) ([]HostOverview, error) {
	rows, err := s.db.Query(ctx, q.Get("HostsOverview"))
	if err != nil {
		return nil, fmt.Errorf("hosts overview: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HostOverview, error) {
		var h HostOverview
		var worst *string // NULL without a host_health row
		err := r.Scan(&h.Host, &h.State, &h.Health, &worst, &h.Vnodes, &h.VnodeMemMiB)
		h.WorstSensor = orZero(worst)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("hosts overview: %w", err)
	}
	return out, nil
}

// SeriesInfo names one KPI series of a hypervisor.
type SeriesInfo struct {
	Metric, Source, VNode, Sensor, Unit string
}

// HostSeries returns the KPI series recorded for host, by metric, vnode and sensor.
func (s *Store) HostSeries(ctx context.Context, host string) ([]SeriesInfo, error) {
	rows, err := s.db.Query(ctx, q.Get("HostSeries"), host)
	if err != nil {
		return nil, fmt.Errorf("series of %s: %w", host, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SeriesInfo, error) {
		var si SeriesInfo
		err := r.Scan(&si.Metric, &si.Source, &si.VNode, &si.Sensor, &si.Unit)
		return si, err
	})
	if err != nil {
		return nil, fmt.Errorf("series of %s: %w", host, err)
	}
	return out, nil
}

// Reading is the newest value of a metric on a host.
type Reading struct {
	Value float64
	At    time.Time
}

// LatestByHost returns, per host name, the newest value of a host-level metric (the largest
// when several sensors give it). Hosts without that metric are absent.
func (s *Store) LatestByHost(ctx context.Context, metric string) (map[string]Reading, error) {
	rows, err := s.db.Query(ctx, q.Get("LatestByHost"), metric)
	if err != nil {
		return nil, fmt.Errorf("latest %s: %w", metric, err)
	}
	out := map[string]Reading{}
	var host string
	var rd Reading
	_, err = pgx.ForEachRow(rows, []any{&host, &rd.Value, &rd.At}, func() error {
		out[host] = rd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("latest %s: %w", metric, err)
	}
	return out, nil
}

// HostTemp is a hypervisor's hottest temperature reading now.
type HostTemp struct {
	Host, Sensor string
	Celsius      float64
	At           time.Time     // when it was read
	Age          time.Duration // how old it was when queried
	Health       string        // the host's health state
	Critical     *float64      // the sensor's critical bound, when a health event gave it
	Headroom     *float64      // Critical - Celsius
}

// HottestHosts returns up to limit hypervisors by their hottest temperature reading, hottest
// first. Hosts without temperature readings are left out.
func (s *Store) HottestHosts(ctx context.Context, limit int) ([]HostTemp, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("hottest hosts: limit %d is not positive", limit)
	}
	rows, err := s.db.Query(ctx, q.Get("HottestHosts"), limit)
	if err != nil {
		return nil, fmt.Errorf("hottest hosts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HostTemp, error) {
		var h HostTemp
		var age float64
		err := r.Scan(&h.Host, &h.Sensor, &h.Celsius, &h.At, &age, &h.Health, &h.Critical, &h.Headroom)
		h.Age = fromSeconds(age)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("hottest hosts: %w", err)
	}
	return out, nil
}

func fromSeconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Breach is a predicted crossing of a critical bound.
type Breach struct {
	Host, Sensor string
	At           time.Time     // the predicted crossing
	Left         time.Duration // from the query's now until At
	Confidence   float64
	Critical     float64 // the bound
	Fitted       float64 // the value the prediction started from
	Current      *float64
	CurrentAt    *time.Time
	State        string    // the sensor's state when predicted (ok or warning)
	PredictedAt  time.Time // when the prediction was made
	Message      string
}

// PredictedBreaches returns the standing predictions of a critical bound being reached within
// the next within, soonest first (see the query for which predictions stand).
func (s *Store) PredictedBreaches(ctx context.Context, within time.Duration) ([]Breach, error) {
	if within <= 0 {
		return nil, fmt.Errorf("predicted breaches: window %v is not positive", within)
	}
	rows, err := s.db.Query(ctx, q.Get("PredictedBreaches"), within.Minutes())
	if err != nil {
		return nil, fmt.Errorf("predicted breaches: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Breach, error) {
		var b Breach
		var minutes float64
		var conf *float32
		var th, fitted *float64
		var state *string
		err := r.Scan(&b.Host, &b.Sensor, &b.At, &minutes, &conf, &th, &fitted, &b.Current, &b.CurrentAt,
			&state, &b.PredictedAt, &b.Message)
		b.Left = fromSeconds(minutes * 60)
		b.Confidence, b.Critical, b.Fitted, b.State = float64(orZero(conf)), orZero(th), orZero(fitted), orZero(state)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("predicted breaches: %w", err)
	}
	return out, nil
}

func orZero[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// HistoryQuery asks for one host's KPI over [From, To) in buckets of Step.
type HistoryQuery struct {
	Host, Metric string
	Sensor       string // "" for every series of the metric (host-level and per vnode)
	From, To     time.Time
	Step         time.Duration
}

// MaxHistoryBuckets bounds how many buckets per series a history query may ask for.
const MaxHistoryBuckets = 100_000

func (h HistoryQuery) validate() error {
	switch {
	case h.Host == "":
		return fmt.Errorf("no host")
	case h.Metric == "":
		return fmt.Errorf("no metric")
	case h.Step <= 0:
		return fmt.Errorf("step %v is not positive", h.Step)
	case !h.To.After(h.From):
		return fmt.Errorf("the range %s to %s is empty", h.From.Format(time.RFC3339), h.To.Format(time.RFC3339))
	case h.To.Sub(h.From)/h.Step > MaxHistoryBuckets:
		return fmt.Errorf("%v in steps of %v is %d buckets, more than %d: choose a larger step",
			h.To.Sub(h.From), h.Step, h.To.Sub(h.From)/h.Step, MaxHistoryBuckets)
	}
	return nil
}

// HistoryPoint is one bucket of one series.
type HistoryPoint struct {
	Source, VNode, Sensor, Unit string
	Bucket                      time.Time // its start
	Avg, Min, Max               float64
	Count                       int64
}

// KpiHistory returns the buckets of every matching series that have samples, ordered by vnode,
// sensor, source and time. A bucket without samples is absent, not zero.
func (s *Store) KpiHistory(ctx context.Context, h HistoryQuery) ([]HistoryPoint, error) {
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("history of %s %s: %w", h.Host, h.Metric, err)
	}
	rows, err := s.db.Query(ctx, q.Get("KpiHistory"), h.Host, h.Metric, h.Sensor, h.From, h.To, h.Step)
	if err != nil {
		return nil, fmt.Errorf("history of %s %s: %w", h.Host, h.Metric, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryPoint, error) {
		var p HistoryPoint
		err := r.Scan(&p.Source, &p.VNode, &p.Sensor, &p.Unit, &p.Bucket, &p.Avg, &p.Min, &p.Max, &p.Count)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s %s: %w", h.Host, h.Metric, err)
	}
	return out, nil
}

// HealthEvent is one row of health_events.
type HealthEvent struct {
	ID               int64
	At               time.Time
	Host, Sensor     string
	Kind             string // state, prediction, error
	From, To         string // "" when not recorded
	Value, Threshold *float64
	PredictedAt      *time.Time
	Confidence       *float64
	Message          string
}

// HealthEvents returns up to limit events since since, newest first; host "" means every host.
func (s *Store) HealthEvents(ctx context.Context, host string, since time.Time, limit int) ([]HealthEvent, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("health events: limit %d is not positive", limit)
	}
	rows, err := s.db.Query(ctx, q.Get("HealthEvents"), host, since, limit)
	if err != nil {
		return nil, fmt.Errorf("health events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HealthEvent, error) {
		var e HealthEvent
		var from, to *string
		var conf *float32
		err := r.Scan(&e.ID, &e.At, &e.Host, &e.Sensor, &e.Kind, &from, &to, &e.Value, &e.Threshold,
			&e.PredictedAt, &conf, &e.Message)
		e.From, e.To = orZero(from), orZero(to)
		if conf != nil {
			c := float64(*conf)
			e.Confidence = &c
		}
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("health events: %w", err)
	}
	return out, nil
}

// JobEnergy is the energy charged to one Slurm job (see EnergyPerJob in sql/queries/kpi.sql
// for the formula).
type JobEnergy struct {
	JobID          int64
	Name, User     string
	State          string
	StartedAt      time.Time
	EndedAt        *time.Time // nil while it runs: charged up to now
	Hypervisors    []string   // where its vnodes ran
	Vnodes         int64
	VnodeSeconds   float64 // Σ over its vnodes of the time they ran it on a hypervisor
	PoweredSeconds float64 // the part of VnodeSeconds with power samples
	Joules, KWh    float64
}

// EnergyPerJob returns the energy of job jobID (0: every job) among the jobs that ran at some
// time since since, newest first.
func (s *Store) EnergyPerJob(ctx context.Context, jobID int64, since time.Time) ([]JobEnergy, error) {
	if jobID < 0 {
		return nil, fmt.Errorf("energy per job: job id %d is negative", jobID)
	}
	rows, err := s.db.Query(ctx, q.Get("EnergyPerJob"), jobID, since)
	if err != nil {
		return nil, fmt.Errorf("energy per job: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobEnergy, error) {
		var j JobEnergy
		err := r.Scan(&j.JobID, &j.Name, &j.User, &j.State, &j.StartedAt, &j.EndedAt, &j.Hypervisors, &j.Vnodes,
			&j.VnodeSeconds, &j.PoweredSeconds, &j.Joules, &j.KWh)
		return j, err
	})
	if err != nil {
		return nil, fmt.Errorf("energy per job: %w", err)
	}
	return out, nil
}
