package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/kpi"
)

// Defaults of ShipperOptions' zero fields.
const (
	DefaultMaxMemorySamples = 200_000
	DefaultMaxDiskBytes     = 1 << 30
	DefaultBatchMaxSamples  = 5_000
	DefaultFlushInterval    = time.Second
	DefaultRetryMin         = 250 * time.Millisecond
	DefaultRetryMax         = 30 * time.Second
)

// seqBlock: sequence numbers are reserved on disk this many at a time, so Put does not write a
// file for each batch; a restart skips what was reserved and not used.
const seqBlock = 1024

// ErrClosed is returned by Put after Close.
var ErrClosed = errors.New("shipper closed")

// ShipperOptions configures a Shipper. Zero values take the defaults above.
type ShipperOptions struct {
	// Dir holds the agent's id, its sequence numbers, the spool (Dir/spool) and the batches the
	// database refused (Dir/rejected). Required; one Shipper per Dir.
	Dir string
	// Agent identifies this agent in ingest_batches; empty: an id generated once and kept in
	// Dir/agent-id (the host name and 8 random hex digits).
	Agent string
	// MaxMemorySamples bounds the samples queued in memory; beyond it the oldest batches go to
	// the spool.
	MaxMemorySamples int
	// MaxDiskBytes bounds the spool; beyond it the oldest spooled batches are dropped (counted
	// and logged: the only way a Shipper loses data).
	MaxDiskBytes int64
	// BatchMaxSamples: larger batches are split, smaller ones of the same host merged up to it.
	BatchMaxSamples int
	// FlushInterval: how long a batch waits in memory for more samples of its host before it
	// is sent (or, while the database is away, spooled).
	FlushInterval time.Duration
	// RetryMin and RetryMax bound the backoff between attempts while the database is away.
	RetryMin, RetryMax time.Duration
	// Writer tunes the Writer the Shipper delivers with.
	Writer WriterOptions
}

func (o ShipperOptions) withDefaults() ShipperOptions {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxMemorySamples, DefaultMaxMemorySamples)
	def(&o.BatchMaxSamples, DefaultBatchMaxSamples)
	if o.MaxDiskBytes <= 0 {
		o.MaxDiskBytes = DefaultMaxDiskBytes
	}
	defDur(&o.FlushInterval, DefaultFlushInterval)
	defDur(&o.RetryMin, DefaultRetryMin)
	defDur(&o.RetryMax, DefaultRetryMax)
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	return o
}

// Stats are a Shipper's counters since it was opened (the spool's figures include batches left
// from before).
type Stats struct {
	Agent            string
	QueuedSamples    int // in memory and spooled
	MemoryBatches    int
	MemorySamples    int
	SpooledBatches   int
	SpooledSamples   int
	SpooledBytes     int64
	SpoolPeakBytes   int64
	Delivered        int64 // batches written
	DeliveredSamples int64
	Duplicates       int64 // batches found delivered before (a lost reply, a restart) and skipped
	DuplicateSamples int64 // their samples, already in the database
	Rejected         int64 // batches the database refused, set aside in Dir/rejected
	RejectedSamples  int64
	Dropped          int64 // spooled batches dropped for the disk budget (or an unwritable spool)
	DroppedSamples   int64
	CorruptBytes     int64 // spool bytes found unreadable on open
	Down             bool  // the last attempt failed and the Shipper is retrying
	DownSince        time.Time
	LastError        string
	LastErrorAt      time.Time
}

// queued is a batch in the memory queue.
type queued struct {
	b        Batch
	born     time.Time
	inflight bool
	// tried: handed to the Writer at least once. Such a batch is never merged into: its first
	// attempt may have committed with the reply lost, and the retry would then be skipped as
	// delivered together with the samples merged in since.
	tried bool
}

// Shipper is the agent's side of the ingest path: Put queues batches without ever waiting for the
// database, Run delivers them in sequence order through a Writer, and whatever cannot be delivered
// now waits in a bounded memory queue and then in the on-disk spool. See the package doc.
type Shipper struct {
	opts   ShipperOptions
	log    zerolog.Logger
	w      *Writer
	dir    string
	seqDir string

	mu       sync.Mutex
	mem      []*queued
	memN     int // samples in mem
	sp       *spool
	seq      uint64 // last assigned
	reserved uint64 // last reserved on disk
	closed   bool
	stats    Stats
	wake     chan struct{}
	now      func() time.Time
}

// OpenShipper opens (creating) the shipper's directory: its agent id, sequence numbers and spool.
// Batches spooled by an earlier run are delivered first. Unreadable spool records (a crash while
// spooling) are logged and counted in Stats.CorruptBytes.
func OpenShipper(pool *pgxpool.Pool, opts ShipperOptions, log zerolog.Logger) (*Shipper, error) {
	if opts.Dir == "" {
		return nil, errors.New("shipper: no directory (ShipperOptions.Dir)")
	}
	opts = opts.withDefaults()
	if err := os.MkdirAll(filepath.Join(opts.Dir, "rejected"), 0o700); err != nil {
		return nil, fmt.Errorf("shipper: %w", err)
	}
	s := &Shipper{opts: opts, log: log, dir: opts.Dir, wake: make(chan struct{}, 1), now: time.Now}
	if pool != nil {
		s.w = NewWriter(pool, log, opts.Writer)
	}
	agent, err := agentID(opts.Dir, opts.Agent)
	if err != nil {
		return nil, err
	}
	s.stats.Agent = agent
	if s.reserved, err = readSeq(filepath.Join(opts.Dir, "seq")); err != nil {
		return nil, err
	}
	segBytes := min(8<<20, max(64<<10, opts.MaxDiskBytes/8))
	sp, bad, err := openSpool(filepath.Join(opts.Dir, "spool"), opts.MaxDiskBytes, segBytes)
	if err != nil {
		return nil, err
	}
	s.sp = sp
	for _, c := range bad {
		s.stats.CorruptBytes += c.size
		log.Warn().Str("spool", c.path).Int64("offset", c.off).Int64("bytes", c.size).
			Msgf("ingest spool: %s; the batches in it are lost, the others are kept", c)
	}
	// Sequence numbers go on from what was reserved (and from anything spooled, should the seq
	// file be older than the spool).
	for _, seg := range sp.segs {
		for _, r := range seg.recs {
			s.reserved = max(s.reserved, r.seq)
		}
	}
	s.seq = s.reserved
	if sp.batches > 0 {
		log.Info().Int("batches", sp.batches).Int("samples", sp.samples).Int64("bytes", sp.bytes).
			Msg("ingest: delivering batches spooled by an earlier run")
	}
	return s, nil
}

// agentID returns the configured id, or the one kept in dir (generating it the first time).
func agentID(dir, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(dir, "agent-id")
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("shipper: %w", err)
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "agent"
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("shipper: %w", err)
	}
	id := host + "-" + hex.EncodeToString(r[:])
	if err := writeFileAtomic(path, []byte(id+"\n")); err != nil {
		return "", err
	}
	return id, nil
}

func readSeq(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("shipper: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("shipper: %s holds %q, not a sequence number: remove it only together with the spool", path, strings.TrimSpace(string(b)))
	}
	return n, nil
}

// writeFileAtomic replaces path with data: temporary file, fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("shipper: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("shipper: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("shipper: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("shipper: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("shipper: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// nextSeq assigns a sequence number, reserving a block on disk when the last one is used up.
func (s *Shipper) nextSeq() (uint64, error) {
	if s.seq >= s.reserved {
		r := s.seq + seqBlock
		if err := writeFileAtomic(filepath.Join(s.dir, "seq"), []byte(strconv.FormatUint(r, 10)+"\n")); err != nil {
			return 0, err
		}
		s.reserved = r
	}
	s.seq++
	return s.seq, nil
}

// Agent is the id the Shipper gives its batches.
func (s *Shipper) Agent() string { return s.stats.Agent }

// Put queues b for delivery, giving it the agent's id and the next sequence number (a batch
// larger than BatchMaxSamples is split; a small one may be merged into a queued batch of the same
// host). It never waits for the database; it may write to the spool. A batch that can never be
// written (see ErrRejected) is refused here with the reason and not queued.
func (s *Shipper) Put(b Batch) error {
	b.Agent = s.stats.Agent
	b.Seq = 1 // checked below; the real one is given when queued
	if err := validate(&b); err != nil {
		s.mu.Lock()
		s.stats.Rejected++
		s.stats.RejectedSamples += int64(len(b.Samples))
		s.mu.Unlock()
		return reject(&b, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(b.Samples) == 0 && len(b.Events) == 0 {
		return nil
	}
	now := s.now()
	for first := true; first || len(b.Samples) > 0; first = false {
		n := min(len(b.Samples), s.opts.BatchMaxSamples)
		// Copies: the caller may reuse its slices.
		part := Batch{Host: b.Host, Agent: b.Agent, Samples: append([]kpi.Sample(nil), b.Samples[:n]...)}
		b.Samples = b.Samples[n:]
		if len(b.Samples) == 0 {
			part.Events = append([]health.Event(nil), b.Events...)
		}
		if t := s.mergeTarget(part.Host, len(part.Samples), now); t != nil {
			t.b.Samples = append(t.b.Samples, part.Samples...)
			t.b.Events = append(t.b.Events, part.Events...)
		} else {
			seq, err := s.nextSeq()
			if err != nil {
				return err
			}
			part.Seq = seq
			s.mem = append(s.mem, &queued{b: part, born: now})
		}
		s.memN += len(part.Samples)
	}
	s.shed(now)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// mergeTarget is the newest queued batch of host that can take n more samples, or nil.
func (s *Shipper) mergeTarget(host string, n int, now time.Time) *queued {
	for i := len(s.mem) - 1; i >= 0; i-- {
		q := s.mem[i]
		if q.b.Host != host {
			continue
		}
		if q.tried || len(q.b.Events) > 0 || len(q.b.Samples)+n > s.opts.BatchMaxSamples || now.Sub(q.born) >= s.opts.FlushInterval {
			return nil
		}
		return q
	}
	return nil
}

// sealed: a queued batch that will not take more samples. One with health events goes at once:
// the server reacts to them (NOTIFY), and waiting FlushInterval would delay an evacuation.
func (s *Shipper) sealed(q *queued, now time.Time) bool {
	return q.tried || len(q.b.Events) > 0 || len(q.b.Samples) >= s.opts.BatchMaxSamples || now.Sub(q.born) >= s.opts.FlushInterval
}

// shed moves batches from the front of the memory queue to the spool: while memory is over its
// bound, and, while the database is away, every sealed one.
func (s *Shipper) shed(now time.Time) {
	var out []*queued
	n := s.memN
	for _, q := range s.mem {
		if n > s.opts.MaxMemorySamples || (s.stats.Down && s.sealed(q, now)) {
			out = append(out, q)
			n -= len(q.b.Samples)
			continue
		}
		break
	}
	s.spill(out)
}

// spill writes queued batches (the front of mem) to the spool and takes them off the memory queue.
// When the spool cannot be written they stay in memory, unless memory is over its bound: then
// they are dropped (counted).
func (s *Shipper) spill(qs []*queued) {
	if len(qs) == 0 {
		return
	}
	ps := make([]pending, len(qs))
	for i, q := range qs {
		ps[i] = pending{seq: q.b.Seq, samples: len(q.b.Samples), events: len(q.b.Events), payload: encodeBatch(&q.b)}
	}
	dropped, err := s.sp.append(ps)
	s.countDropped(dropped)
	if err != nil {
		s.noteError(fmt.Errorf("spool to %s: %w", s.sp.dir, err))
		if s.memN <= s.opts.MaxMemorySamples {
			return // keep them in memory
		}
		for _, q := range qs {
			s.countDropped([]*record{{seq: q.b.Seq, samples: len(q.b.Samples)}})
		}
		s.log.Error().Err(err).Int("batches", len(qs)).Msg("ingest: the spool cannot be written and memory is full: batches dropped; check the disk of the spool")
	}
	s.mem = s.mem[len(qs):]
	for _, q := range qs {
		s.memN -= len(q.b.Samples)
	}
}

func (s *Shipper) countDropped(rs []*record) {
	if len(rs) == 0 {
		return
	}
	var samples int
	for _, r := range rs {
		s.stats.Dropped++
		s.stats.DroppedSamples += int64(r.samples)
		samples += r.samples
	}
	s.log.Warn().Int("batches", len(rs)).Int("samples", samples).Uint64("first_seq", rs[0].seq).
		Int64("max_disk_bytes", s.opts.MaxDiskBytes).
		Msg("ingest: spool full: oldest batches dropped (raise MaxDiskBytes or bring the database back sooner)")
}

func (s *Shipper) noteError(err error) {
	s.stats.LastError = err.Error()
	s.stats.LastErrorAt = s.now()
}

// next picks the batch to deliver: the spool's oldest, else the memory queue's front once it is
// sealed (or flushing). It returns the time to wait when nothing is ready.
func (s *Shipper) next(flush bool) (*Batch, *queued, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.sp.head(); r != nil {
		p, err := s.sp.read(r)
		if err == nil {
			var b Batch
			if b, err = decodeBatch(p); err == nil {
				return &b, nil, 0, nil
			}
		}
		// Unreadable since it was spooled (the disk changed under us): set it aside, go on.
		s.stats.Dropped++
		s.stats.DroppedSamples += int64(r.samples)
		s.log.Error().Err(err).Uint64("seq", r.seq).Msg("ingest: a spooled batch became unreadable and is dropped")
		_, derr := s.sp.done(r.seq)
		return nil, nil, 0, derr
	}
	if len(s.mem) == 0 {
		return nil, nil, s.opts.FlushInterval, nil
	}
	q := s.mem[0]
	now := s.now()
	if q.inflight { // taken by a concurrent Flush
		return nil, nil, s.opts.FlushInterval, nil
	}
	if !flush && !s.sealed(q, now) && len(s.mem) == 1 {
		return nil, nil, s.opts.FlushInterval - now.Sub(q.born), nil
	}
	q.inflight, q.tried = true, true
	b := q.b
	return &b, q, 0, nil
}

// finish takes a batch that is done (delivered, duplicate or rejected) off the queues.
func (s *Shipper) finish(b *Batch, q *queued) {
	if q != nil {
		for i, m := range s.mem {
			if m == q {
				s.mem = append(s.mem[:i], s.mem[i+1:]...)
				s.memN -= len(q.b.Samples)
				break
			}
		}
	}
	// Also when it came from memory: it may have been spilled while in flight.
	if _, err := s.sp.done(b.Seq); err != nil {
		s.noteError(err)
		s.log.Error().Err(err).Msg("ingest: spool")
	}
}

// Run delivers queued batches until ctx is done (then it returns nil; what is queued stays
// queued: call Close to spool it). While the database is unreachable it keeps every batch and
// retries with a backoff from RetryMin doubling to RetryMax, logging the outage once when it
// starts and once when it ends.
func (s *Shipper) Run(ctx context.Context) error {
	if s.w == nil {
		return errors.New("shipper: no database pool")
	}
	backoff := s.opts.RetryMin
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return nil
		}
		b, q, wait, err := s.next(false)
		if err != nil {
			return err
		}
		if b == nil {
			if wait > 0 {
				if !timer.Stop() {
					select {
					case <-timer.C:
					default:
					}
				}
				timer.Reset(wait)
				select {
				case <-ctx.Done():
				case <-s.wake:
				case <-timer.C:
				}
			}
			continue
		}
		delivered, err := s.w.Write(ctx, *b)
		if err != nil && ctx.Err() != nil {
			s.release(q)
			return nil
		}
		switch {
		case err == nil:
			backoff = s.opts.RetryMin
			s.delivered(b, q, delivered)
		case Permanent(err):
			backoff = s.opts.RetryMin
			s.rejected(b, q, err)
		default:
			s.failed(q, err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, s.opts.RetryMax)
		}
	}
}

func (s *Shipper) release(q *queued) {
	if q == nil {
		return
	}
	s.mu.Lock()
	q.inflight = false
	s.mu.Unlock()
}

func (s *Shipper) delivered(b *Batch, q *queued, fresh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stats.Down {
		s.log.Info().Dur("outage", s.now().Sub(s.stats.DownSince).Round(time.Second)).
			Int("spooled_batches", s.sp.batches).Int("memory_batches", len(s.mem)).
			Msg("ingest: database reachable again: delivering the queued batches")
		s.stats.Down = false
	}
	if fresh {
		s.stats.Delivered++
		s.stats.DeliveredSamples += int64(len(b.Samples))
	} else {
		s.stats.Duplicates++
		s.stats.DuplicateSamples += int64(len(b.Samples))
		s.log.Debug().Str("agent", b.Agent).Uint64("seq", b.Seq).Msg("ingest: batch was delivered before: skipped")
	}
	s.finish(b, q)
}

func (s *Shipper) rejected(b *Batch, q *queued, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Rejected++
	s.stats.RejectedSamples += int64(len(b.Samples))
	s.noteError(err)
	where, werr := s.setAside(b, err)
	ev := s.log.Error().Err(err).Str("host", b.Host).Uint64("seq", b.Seq).Int("samples", len(b.Samples))
	if werr != nil {
		ev.AnErr("set_aside_error", werr).Msg("ingest: batch refused by the database and could not be set aside: it is lost")
	} else {
		ev.Str("file", where).Msg("ingest: batch refused by the database: set aside, the queue goes on")
	}
	s.finish(b, q)
}

// setAside writes a refused batch (framed as in the spool) and the reason to Dir/rejected.
func (s *Shipper) setAside(b *Batch, reason error) (string, error) {
	base := filepath.Join(s.dir, "rejected", fmt.Sprintf("%s-%d", b.Agent, b.Seq))
	if err := writeFileAtomic(base+".batch", frame(encodeBatch(b))); err != nil {
		return "", err
	}
	msg := fmt.Sprintf("%s\nagent %s seq %d host %s: %d samples, %d events\n%v\n",
		s.now().UTC().Format(time.RFC3339), b.Agent, b.Seq, b.Host, len(b.Samples), len(b.Events), reason)
	if err := writeFileAtomic(base+".error", []byte(msg)); err != nil {
		return "", err
	}
	return base + ".batch", nil
}

// failed: the database could not be reached (or refused for a reason that is not the batch's).
// The batch stays queued; the first failure of an outage is logged with what to do.
func (s *Shipper) failed(q *queued, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q != nil {
		q.inflight = false
	}
	s.noteError(err)
	if !s.stats.Down {
		s.stats.Down, s.stats.DownSince = true, s.now()
		s.log.Warn().Err(err).Str("spool", s.sp.dir).Int("memory_batches", len(s.mem)).
			Msgf("ingest: cannot deliver to the database; keeping every batch (in memory, then spooled to disk) and retrying until it is back: %s", hint(err))
	}
	s.shed(s.now())
}

// hint says what to do about a delivery error.
func hint(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "42501":
			return "the agent's database role lacks a privilege: make it a member of drover_agent (GRANT drover_agent TO <role>)"
		case pe.Code == "42P01" || pe.Code == "42883":
			return "the schema is missing or old: run drover db migrate"
		case pe.Code[:2] == "28":
			return "the database refused the login: check the agent's database user and password file"
		}
	}
	return "check that PostgreSQL is running and reachable at the configured database.url"
}

// Close stops Put and spools everything still in memory, so that the next run delivers it. Cancel
// Run's context first; a batch Run is still writing is spooled as well and, if its write went
// through, skipped as delivered by the next run.
func (s *Shipper) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for _, q := range s.mem {
		q.inflight = false
	}
	n := len(s.mem)
	s.spill(s.mem)
	err := s.sp.close()
	if len(s.mem) > 0 {
		err = errors.Join(err, fmt.Errorf("shipper: %d batches could not be spooled: %s", len(s.mem), s.stats.LastError))
	}
	if n > 0 {
		s.log.Info().Int("batches", n).Msg("ingest: queued batches spooled for the next run")
	}
	return err
}

// Flush delivers everything queued now, without waiting for batches to fill (tests, a shutdown
// with the database up), and returns when the queues are empty or at the first failure. Call it
// when Run is not running.
func (s *Shipper) Flush(ctx context.Context) error {
	for {
		b, q, _, err := s.next(true)
		if err != nil {
			return err
		}
		if b == nil {
			return nil
		}
		delivered, err := s.w.Write(ctx, *b)
		switch {
		case err == nil:
			s.delivered(b, q, delivered)
		case Permanent(err):
			s.rejected(b, q, err)
		default:
			s.release(q)
			return err
		}
	}
}

// Stats returns the counters.
func (s *Shipper) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.MemoryBatches, st.MemorySamples = len(s.mem), s.memN
	st.SpooledBatches, st.SpooledSamples, st.SpooledBytes, st.SpoolPeakBytes = s.sp.batches, s.sp.samples, s.sp.bytes, s.sp.peak
	st.QueuedSamples = st.MemorySamples + st.SpooledSamples
	return st
}
