package ingest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/health"
)

// runShipper runs s until the test ends.
func runShipper(t *testing.T, s *Shipper) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once atomic.Bool
	stop = func() {
		if once.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30 s of its context's end")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitStats polls s until cond holds, failing after 60 s.
func waitStats(t *testing.T, s *Shipper, what string, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := s.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func openShipperDB(t *testing.T, pool *pgxpool.Pool, dir string, opts ShipperOptions) *Shipper {
	t.Helper()
	opts.Dir = dir
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 20 * time.Millisecond
	}
	opts.RetryMin, opts.RetryMax = 10*time.Millisecond, 200*time.Millisecond
	s, err := OpenShipper(pool, opts, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A refused batch is set aside with its reason and the queue goes on; a lost commit reply is
// retried and skipped as delivered.
func TestShipperRejectsAndRetries(t *testing.T) {
	d := newTestDB(t, 3)
	dir := t.TempDir()
	s := openShipperDB(t, d.agent, dir, ShipperOptions{Agent: "agent-t"})
	var lost atomic.Int32
	s.w.afterCommit = func() error {
		if lost.Add(1) == 2 { // the second batch's reply is lost
			return errors.New("connection reset after COMMIT")
		}
		return nil
	}
	now := time.Now()
	for _, b := range []Batch{
		{Host: "hv1", Samples: cycleSamples(10, now, 1)},
		{Host: "hv2", Samples: cycleSamples(10, now, 2), Events: []health.Event{stateEvent("hv2", "CPU Temp", now, health.OK, health.Critical, 99)}},
		{Host: "hv9", Samples: cycleSamples(10, now, 3)}, // no such host
		{Host: "hv3", Samples: cycleSamples(10, now.Add(time.Second), 4)},
	} {
		if err := s.Put(b); err != nil {
			t.Fatal(err)
		}
	}
	runShipper(t, s)
	st := waitStats(t, s, "the queue to empty", func(st Stats) bool { return st.QueuedSamples == 0 && st.MemoryBatches == 0 })
	// hv1's and hv3's written; hv2's written once though its reply was lost (the retry found it:
	// a duplicate); hv9's refused.
	if st.Delivered != 2 || st.DeliveredSamples != 20 || st.Duplicates != 1 || st.DuplicateSamples != 10 || st.Rejected != 1 || st.RejectedSamples != 10 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := d.count(t, `SELECT count(*) FROM kpi_samples`); n != 30 {
		t.Errorf("samples = %d, want 30", n)
	}
	if n := d.count(t, `SELECT count(*) FROM health_events`); n != 1 {
		t.Errorf("events = %d, want 1", n)
	}
	errText, err := os.ReadFile(filepath.Join(dir, "rejected", "agent-t-3.error"))
	if err != nil || !strings.Contains(string(errText), `"hv9"`) {
		t.Fatalf("rejected/agent-t-3.error: %q, %v", errText, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "rejected", "agent-t-3.batch"))
	if err != nil {
		t.Fatal(err)
	}
	if n, why := readFrame(raw); why != "" || int(n) != len(raw) {
		t.Fatalf("set-aside batch unreadable: %s", why)
	}
	b, err := decodeBatch(raw[recordHeader:])
	if err != nil || b.Host != "hv9" || len(b.Samples) != 10 {
		t.Fatalf("set-aside batch: %+v, %v", b, err)
	}
}

// Batches spooled by a run that ended are delivered by the next, once.
func TestShipperDeliversSpoolAfterRestart(t *testing.T) {
	d := newTestDB(t, 1)
	dir := t.TempDir()
	s := openShipperDB(t, d.agent, dir, ShipperOptions{FlushInterval: time.Hour})
	for i := 0; i < 5; i++ {
		if err := s.Put(Batch{Host: "hv1", Samples: cycleSamples(20, time.Now().Add(time.Duration(i)*time.Second), 1)}); err != nil {
			t.Fatal(err)
		}
	}
	// The 5 Puts merged into one batch. It is written, but the agent stops before it hears so.
	if len(s.mem) != 1 {
		t.Fatalf("%d batches queued, want 1", len(s.mem))
	}
	if ok, err := s.w.Write(context.Background(), s.mem[0].b); !ok || err != nil {
		t.Fatalf("write: %v, %v", ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openShipperDB(t, d.agent, dir, ShipperOptions{})
	runShipper(t, s)
	st := waitStats(t, s, "the spool to drain", func(st Stats) bool { return st.QueuedSamples == 0 })
	if n := d.count(t, `SELECT count(*) FROM kpi_samples`); n != 100 {
		t.Errorf("samples = %d, want 100", n)
	}
	if st.Delivered != 0 || st.Duplicates != 1 || st.SpooledBytes != 0 {
		t.Errorf("stats %+v: want the spooled batch skipped as delivered and the spool empty", st)
	}
}

// A batch whose commit reply was lost takes no more samples: its retry is skipped as delivered,
// and samples merged into it would go with it.
func TestShipperNoMergeAfterAttempt(t *testing.T) {
	d := newTestDB(t, 1)
	ctx := context.Background()
	s := openShipperDB(t, d.agent, t.TempDir(), ShipperOptions{FlushInterval: time.Hour})
	s.w.afterCommit = func() error { return errors.New("connection reset after COMMIT") }
	now := time.Now()
	if err := s.Put(Batch{Host: "hv1", Samples: cycleSamples(40, now, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err == nil {
		t.Fatal("Flush succeeded through a lost reply")
	}
	s.w.afterCommit = nil
	if err := s.Put(Batch{Host: "hv1", Samples: cycleSamples(40, now.Add(time.Second), 1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if n := d.count(t, `SELECT count(*) FROM kpi_samples`); n != 80 || st.Duplicates != 1 || st.Delivered != 1 {
		t.Fatalf("%d samples stored, want 80; stats %+v", n, st)
	}
}
