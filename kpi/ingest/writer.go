package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/kpi"
	"github.com/drover-hpc/drover/sql/queries"
)

var q = queries.MustLoad()

// ErrRejected: PostgreSQL or the writer refuses the batch for what it holds (a NaN value, an
// unknown host, a constraint), so sending it again cannot help. errors.As gives the *RejectError.
var ErrRejected = errors.New("batch rejected")

// RejectError is a batch refused for good, with the reason.
type RejectError struct {
	Agent string
	Seq   uint64
	Host  string
	Err   error
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("batch %d of agent %s (host %s) rejected: %v", e.Seq, e.Agent, e.Host, e.Err)
}

// Unwrap lets errors.Is see ErrRejected and the reason.
func (e *RejectError) Unwrap() []error { return []error{ErrRejected, e.Err} }

func reject(b *Batch, err error) error {
	return &RejectError{Agent: b.Agent, Seq: b.Seq, Host: b.Host, Err: err}
}

// Permanent reports whether err says the batch itself is bad (see ErrRejected), as opposed to the
// database being unreachable, overloaded or misconfigured, when the batch must be kept and retried.
func Permanent(err error) bool { return errors.Is(err, ErrRejected) }

// sources are the values kpi_series.source accepts.
var sources = map[string]bool{kpi.SourceProcfs: true, kpi.SourceSysfs: true, kpi.SourceIPMI: true,
	kpi.SourceLibvirt: true, "node_exporter": true}

var eventKinds = map[health.Kind]bool{health.KindState: true, health.KindPrediction: true, health.KindError: true}

// WriterOptions tunes a Writer. Zero values take the defaults.
type WriterOptions struct {
	// SeriesCache bounds the cached series ids (default 1,000,000, some 100 MB at most); when it
	// is full it starts over.
	SeriesCache int
}

// Writer delivers batches to PostgreSQL, each in one transaction, exactly once. It is safe for
// concurrent use; each Write takes one connection of the pool for its transaction.
type Writer struct {
	pool *pgxpool.Pool
	log  zerolog.Logger
	opts WriterOptions

	mu     sync.Mutex
	hosts  map[string]int32
	series map[seriesKey]int32

	// afterCommit, when set (tests), runs after a successful commit and its error is returned
	// as Write's: a reply lost after the commit went through.
	afterCommit func() error
}

type seriesKey struct {
	host                          int32
	source, metric, vnode, sensor string
}

// NewWriter returns a Writer on pool. The pool's role needs drover_agent's privileges.
func NewWriter(pool *pgxpool.Pool, log zerolog.Logger, opts WriterOptions) *Writer {
	if opts.SeriesCache <= 0 {
		opts.SeriesCache = 1_000_000
	}
	return &Writer{pool: pool, log: log, opts: opts, hosts: map[string]int32{}, series: map[seriesKey]int32{}}
}

// Write delivers b: its samples, the newest value of each series (kpi_latest, host_kpi_now) and
// its events, with the batch's record, in one transaction. delivered is false when the batch was
// delivered before (its (Agent, Seq) is recorded): nothing is written twice. A batch that can never
// be written gives an error matching ErrRejected that names the host, sensor and metric at fault;
// any other error (connection lost, database down) leaves the database as it was, or — when the
// commit's reply was lost — with the batch delivered, which the next Write of it finds.
func (w *Writer) Write(ctx context.Context, b Batch) (delivered bool, err error) {
	if err := validate(&b); err != nil {
		return false, reject(&b, err)
	}
	delivered, err = w.write(ctx, &b)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" { // foreign key: a host or series deleted since it was cached
		w.forget()
		delivered, err = w.write(ctx, &b)
	}
	return delivered, err
}

func (w *Writer) write(ctx context.Context, b *Batch) (bool, error) {
	host, err := w.hostID(ctx, b.Host)
	if errors.Is(err, errUnknownHost) {
		return false, reject(b, err)
	}
	if err != nil {
		return false, err
	}
	ids, err := w.seriesIDs(ctx, host, b.Samples)
	if err != nil {
		return false, classify(b, err)
	}

	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	tag, err := tx.Exec(ctx, q.Get("IngestBatch"), b.Agent, int64(b.Seq), b.Host, len(b.Samples), len(b.Events))
	if err != nil {
		return false, classify(b, fmt.Errorf("record batch: %w", err))
	}
	if tag.RowsAffected() == 0 {
		return false, nil // delivered before: the deferred rollback undoes nothing
	}
	if len(b.Samples) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"kpi_samples"}, []string{"series_id", "ts", "value"},
			&sampleRows{ids: ids, s: b.Samples, i: -1}); err != nil {
			return false, classify(b, fmt.Errorf("copy %d samples: %w", len(b.Samples), err))
		}
		sid, ts, vs, st := newest(ids, b.Samples)
		if _, err := tx.Exec(ctx, q.Get("IngestLatest"), host, sid, ts, vs, st); err != nil {
			return false, classify(b, fmt.Errorf("update latest values: %w", err))
		}
	}
	if len(b.Events) > 0 {
		if _, err := tx.Exec(ctx, q.Get("IngestEvents"), eventArgs(host, b.Events)...); err != nil {
			return false, classify(b, fmt.Errorf("insert %d events: %w", len(b.Events), err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, classify(b, fmt.Errorf("commit: %w", err))
	}
	if w.afterCommit != nil {
		if err := w.afterCommit(); err != nil {
			return false, err
		}
	}
	return true, nil
}

// classify makes errors about the batch's content rejections; the rest stays retryable.
func classify(b *Batch, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "22", "23": // data exception, integrity constraint violation
			return reject(b, err)
		}
	}
	return err
}

// validate checks what PostgreSQL would refuse, naming the sample or event at fault.
func validate(b *Batch) error {
	switch {
	case b.Host == "":
		return errors.New("no host")
	case b.Agent == "":
		return errors.New("no agent")
	case b.Seq == 0 || b.Seq > math.MaxInt64:
		return fmt.Errorf("sequence number %d is not in 1..2^63-1", b.Seq)
	}
	for i := range b.Samples {
		s := &b.Samples[i]
		bad := ""
		switch {
		case !sources[s.Source]:
			bad = fmt.Sprintf("unknown source %q", s.Source)
		case s.Metric == "":
			bad = "no metric"
		case math.IsNaN(s.Value) || math.IsInf(s.Value, 0):
			bad = fmt.Sprintf("value %v is not a finite number", s.Value)
		case s.Time.IsZero():
			bad = "no time"
		}
		if bad != "" {
			return fmt.Errorf("sample %d (host %s, source %s, sensor %q, metric %s, vnode %q): %s",
				i, b.Host, s.Source, s.Sensor, s.Metric, s.VNode, bad)
		}
	}
	for i := range b.Events {
		e := &b.Events[i]
		bad := ""
		switch {
		case e.Host != "" && e.Host != b.Host:
			bad = fmt.Sprintf("event of host %s in a batch of host %s", e.Host, b.Host)
		case !eventKinds[e.Kind]:
			bad = fmt.Sprintf("unknown kind %q", e.Kind)
		case e.Sensor == "":
			bad = "no sensor"
		case e.At.IsZero():
			bad = "no time"
		case math.IsNaN(e.Value) || math.IsInf(e.Value, 0) || math.IsNaN(e.Threshold) || math.IsInf(e.Threshold, 0):
			bad = fmt.Sprintf("value %v or threshold %v is not a finite number", e.Value, e.Threshold)
		case !(e.Confidence >= 0 && e.Confidence <= 1):
			bad = fmt.Sprintf("confidence %v is not in [0, 1]", e.Confidence)
		}
		if bad != "" {
			return fmt.Errorf("event %d (host %s, sensor %q, %s): %s", i, b.Host, e.Sensor, e.Kind, bad)
		}
	}
	return nil
}

var errUnknownHost = errors.New("unknown host")

func (w *Writer) hostID(ctx context.Context, name string) (int32, error) {
	w.mu.Lock()
	id, ok := w.hosts[name]
	w.mu.Unlock()
	if ok {
		return id, nil
	}
	err := w.pool.QueryRow(ctx, q.Get("IngestHostID"), name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w %q: no such hypervisor in the database (add it to the hypervisors of drover's configuration, or fix the agent's host name)", errUnknownHost, name)
	}
	if err != nil {
		return 0, fmt.Errorf("look up host %s: %w", name, err)
	}
	w.mu.Lock()
	w.hosts[name] = id
	w.mu.Unlock()
	return id, nil
}

// seriesIDs returns the series id of every sample, creating missing series. It runs outside the
// batch's transaction, so cached ids are always of committed series.
func (w *Writer) seriesIDs(ctx context.Context, host int32, samples []kpi.Sample) ([]int32, error) {
	ids := make([]int32, len(samples))
	var missing []int
	w.mu.Lock()
	for i := range samples {
		s := &samples[i]
		id, ok := w.series[seriesKey{host, s.Source, s.Metric, s.VNode, s.Sensor}]
		if !ok {
			missing = append(missing, i)
		}
		ids[i] = id
	}
	w.mu.Unlock()
	for try := 0; len(missing) > 0; try++ {
		if try == 3 {
			s := &samples[missing[0]]
			return nil, fmt.Errorf("series %s %q %s of host id %d: not created and not found", s.Source, s.Sensor, s.Metric, host)
		}
		var err error
		if missing, err = w.resolve(ctx, host, samples, ids, missing); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// resolve gets or creates the series of samples[missing] and returns those still missing.
func (w *Writer) resolve(ctx context.Context, host int32, samples []kpi.Sample, ids []int32, missing []int) ([]int, error) {
	n := len(missing)
	src, met, vn, sen, unit := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	for _, i := range missing {
		s := &samples[i]
		src, met, vn, sen, unit = append(src, s.Source), append(met, s.Metric), append(vn, s.VNode), append(sen, s.Sensor), append(unit, s.Unit)
	}
	rows, err := w.pool.Query(ctx, q.Get("IngestSeries"), host, src, met, vn, sen, unit)
	if err != nil {
		return nil, fmt.Errorf("get or create series: %w", err)
	}
	found := map[seriesKey]int32{}
	for rows.Next() {
		k := seriesKey{host: host}
		var id int32
		if err := rows.Scan(&id, &k.source, &k.metric, &k.vnode, &k.sensor); err != nil {
			rows.Close()
			return nil, fmt.Errorf("get or create series: %w", err)
		}
		found[k] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get or create series: %w", err)
	}
	w.mu.Lock()
	if len(w.series)+len(found) > w.opts.SeriesCache {
		w.series = map[seriesKey]int32{}
	}
	for k, id := range found {
		w.series[k] = id
	}
	w.mu.Unlock()
	var still []int
	for _, i := range missing {
		s := &samples[i]
		if id, ok := found[seriesKey{host, s.Source, s.Metric, s.VNode, s.Sensor}]; ok {
			ids[i] = id
		} else {
			still = append(still, i)
		}
	}
	return still, nil
}

// forget empties the caches (a cached host or series was deleted).
func (w *Writer) forget() {
	w.mu.Lock()
	w.hosts = map[string]int32{}
	w.series = map[seriesKey]int32{}
	w.mu.Unlock()
}

// newest returns, per series, its newest sample as the arrays kpi_ingest_latest takes.
func newest(ids []int32, samples []kpi.Sample) ([]int32, []time.Time, []float64, []string) {
	at := make(map[int32]int, 64)
	for i, id := range ids {
		if j, ok := at[id]; !ok || samples[i].Time.After(samples[j].Time) {
			at[id] = i
		}
	}
	sid, ts, vs, st := make([]int32, 0, len(at)), make([]time.Time, 0, len(at)), make([]float64, 0, len(at)), make([]string, 0, len(at))
	for id, i := range at {
		s := &samples[i]
		sid, ts, vs, st = append(sid, id), append(ts, s.Time), append(vs, s.Value), append(st, s.Status)
	}
	return sid, ts, vs, st
}

func eventArgs(host int32, evs []health.Event) []any {
	n := len(evs)
	ts, sensor, kind, from, to := make([]time.Time, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	value, threshold, predicted, confidence, msg := make([]*float64, n), make([]*float64, n), make([]*time.Time, n), make([]*float32, n), make([]string, n)
	for i := range evs {
		e := &evs[i]
		ts[i], sensor[i], kind[i], from[i], to[i], msg[i] = e.At, e.Sensor, string(e.Kind), e.From.String(), e.To.String(), e.Message
		if e.Kind != health.KindError {
			v, th := e.Value, e.Threshold
			value[i], threshold[i] = &v, &th
		}
		if e.Kind == health.KindPrediction {
			p, c := e.PredictedAt, float32(e.Confidence)
			if !p.IsZero() {
				predicted[i] = &p
			}
			confidence[i] = &c
		}
	}
	return []any{host, ts, sensor, kind, from, to, value, threshold, predicted, confidence, msg}
}

// sampleRows feeds CopyFrom without building a [][]any.
type sampleRows struct {
	ids []int32
	s   []kpi.Sample
	i   int
}

func (r *sampleRows) Next() bool { r.i++; return r.i < len(r.s) }
func (r *sampleRows) Values() ([]any, error) {
	return []any{r.ids[r.i], r.s[r.i].Time, r.s[r.i].Value}, nil
}
func (r *sampleRows) Err() error { return nil }
