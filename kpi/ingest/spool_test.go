package ingest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/kpi"
)

func testBatch(seq uint64, samples int) Batch {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	b := Batch{Host: "hv1", Agent: "agent-x", Seq: seq, Samples: cycleSamples(samples, t0, float64(seq))}
	if samples > 2 {
		b.Samples[1].VNode, b.Samples[1].Status = "vn7", kpi.StatusUpperCritical
		b.Samples[2].Time = t0.Add(-90 * time.Minute) // before the base time
	}
	b.Events = []health.Event{
		stateEvent("hv1", "CPU Temp", t0, health.OK, health.Warning, 81.5),
		{Host: "hv1", Sensor: "Inlet Temp", Kind: health.KindPrediction, At: t0, From: health.Warning, To: health.Critical,
			Value: 33, Threshold: 40, PredictedAt: t0.Add(7 * time.Minute), Confidence: 0.93, Message: "soon"},
		{Host: "hv1", Sensor: "FAN1", Kind: health.KindError, At: t0, From: health.Unknown, To: health.Unknown, Message: "NaN"},
	}
	return b
}

// sameBatch compares batches, times by instant.
func sameBatch(t *testing.T, got, want Batch) {
	t.Helper()
	norm := func(b Batch) string {
		for i := range b.Samples {
			b.Samples[i].Time = b.Samples[i].Time.UTC()
		}
		for i := range b.Events {
			b.Events[i].At, b.Events[i].PredictedAt = b.Events[i].At.UTC(), b.Events[i].PredictedAt.UTC()
		}
		return fmt.Sprintf("%+v", b)
	}
	if g, w := norm(got), norm(want); g != w {
		t.Fatalf("batch differs:\n got %s\nwant %s", g, w)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, b := range []Batch{testBatch(42, 40), {Host: "h", Agent: "a", Seq: 1}, {Host: "h", Agent: "a", Seq: 2, Samples: []kpi.Sample{{Source: "procfs", Metric: "load1", Value: -0.5}}}} {
		got, err := decodeBatch(encodeBatch(&b))
		if err != nil {
			t.Fatal(err)
		}
		sameBatch(t, got, b)
	}
	// 40 samples of 40 series: the strings are written once; about 25 bytes a sample.
	if n := len(encodeBatch(&Batch{Host: "hv1", Agent: "a", Seq: 1, Samples: cycleSamples(40, time.Now(), 1)})); n > 40*25+1000 {
		t.Errorf("encoding of 40 samples takes %d bytes", n)
	}
	// Every truncation of an encoding is refused, never a panic or a wrong batch.
	p := encodeBatch(&[]Batch{testBatch(3, 5)}[0])
	for i := 0; i < len(p); i++ {
		if _, err := decodeBatch(p[:i]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: decoded", i, len(p))
		}
	}
}

func spoolOf(t *testing.T, dir string) (*spool, []corruption) {
	t.Helper()
	sp, bad, err := openSpool(dir, 1<<30, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return sp, bad
}

func spoolBatches(t *testing.T, sp *spool, seqs ...uint64) {
	t.Helper()
	var ps []pending
	for _, s := range seqs {
		b := testBatch(s, 10)
		ps = append(ps, pending{seq: s, samples: 10, events: 3, payload: encodeBatch(&b)})
	}
	if dropped, err := sp.append(ps); err != nil || len(dropped) > 0 {
		t.Fatalf("append: dropped %d, err %v", len(dropped), err)
	}
}

// seqs lists the spooled records not done, reading each one back.
func seqs(t *testing.T, sp *spool) []uint64 {
	t.Helper()
	var out []uint64
	for _, seg := range sp.segs {
		for _, r := range seg.recs {
			if r.done {
				continue
			}
			p, err := sp.read(r)
			if err != nil {
				t.Fatal(err)
			}
			b, err := decodeBatch(p)
			if err != nil || b.Seq != r.seq {
				t.Fatalf("record %d: seq %d, err %v", r.seq, b.Seq, err)
			}
			sameBatch(t, b, testBatch(r.seq, 10))
			out = append(out, r.seq)
		}
	}
	return out
}

func TestSpoolReopen(t *testing.T) {
	dir := t.TempDir()
	sp, _ := spoolOf(t, dir)
	spoolBatches(t, sp, 1, 2)
	spoolBatches(t, sp, 3)
	if ok, err := sp.done(1); !ok || err != nil {
		t.Fatalf("done(1) = %v, %v", ok, err)
	}
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	// Record 1 is in a segment not yet deleted: it comes back (the database skips it).
	sp, bad := spoolOf(t, dir)
	if len(bad) != 0 {
		t.Fatalf("corruption reported: %v", bad)
	}
	if got := fmt.Sprint(seqs(t, sp)); got != "[1 2 3]" {
		t.Fatalf("records after reopen: %s", got)
	}
	for _, s := range []uint64{1, 2, 3} {
		if _, err := sp.done(s); err != nil {
			t.Fatal(err)
		}
	}
	// All done: the segment is gone.
	if left, _ := filepath.Glob(filepath.Join(dir, "seg-*")); len(left) != 0 || sp.bytes != 0 || sp.batches != 0 {
		t.Fatalf("after all done: files %v, bytes %d, batches %d", left, sp.bytes, sp.batches)
	}
}

// A flipped bit in a record: that record is reported, the ones around it are kept.
func TestSpoolCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	sp, _ := spoolOf(t, dir)
	spoolBatches(t, sp, 1, 2, 3)
	r2 := sp.segs[0].recs[1]
	path := r2.seg.path
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[r2.off+recordHeader+40] ^= 0x10
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sp, bad := spoolOf(t, dir)
	if len(bad) != 1 || bad[0].off != r2.off || bad[0].size != r2.size || !strings.Contains(bad[0].String(), "checksum mismatch") {
		t.Fatalf("corruption = %v, want record 2 (%d bytes at %d) with a checksum mismatch", bad, r2.size, r2.off)
	}
	if got := fmt.Sprint(seqs(t, sp)); got != "[1 3]" {
		t.Fatalf("records: %s, want [1 3]", got)
	}
}

// A crash in the middle of writing a record: the older records are intact, the torn one is
// reported, and the spool goes on in a new segment.
func TestSpoolTornWrite(t *testing.T) {
	dir := t.TempDir()
	sp, _ := spoolOf(t, dir)
	spoolBatches(t, sp, 1, 2)
	path := sp.segs[0].path
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	b := testBatch(3, 10)
	torn := frame(encodeBatch(&b))
	for _, cut := range []int{5, recordHeader + 7, len(torn) - 1} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			good := len(data)
			if err := os.WriteFile(path, append(data, torn[:cut]...), 0o600); err != nil {
				t.Fatal(err)
			}
			sp, bad := spoolOf(t, dir)
			if len(bad) != 1 || bad[0].off != int64(good) || bad[0].size != int64(cut) || !strings.Contains(bad[0].reason, "torn write") {
				t.Fatalf("corruption = %v, want %d torn bytes at %d", bad, cut, good)
			}
			spoolBatches(t, sp, 4)
			if got := fmt.Sprint(seqs(t, sp)); got != "[1 2 4]" {
				t.Fatalf("records: %s, want [1 2 4]", got)
			}
			// Put the file back for the next cut; drop the new segment.
			if err := sp.close(); err != nil {
				t.Fatal(err)
			}
			_ = os.WriteFile(path, data, 0o600)
			_ = os.Remove(sp.segs[len(sp.segs)-1].path)
		})
	}
}

func openTestShipper(t *testing.T, dir string, opts ShipperOptions) *Shipper {
	t.Helper()
	opts.Dir = dir
	s, err := OpenShipper(nil, opts, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Sequence numbers go on increasing across restarts; the agent id stays.
func TestShipperRestartContinuesSeq(t *testing.T) {
	dir := t.TempDir()
	var last uint64
	var agent string
	for run := 0; run < 3; run++ {
		s := openTestShipper(t, dir, ShipperOptions{})
		if run == 0 {
			agent = s.Agent()
			if !strings.Contains(agent, "-") {
				t.Fatalf("agent id %q", agent)
			}
		} else if s.Agent() != agent {
			t.Fatalf("run %d: agent %q, want %q", run, s.Agent(), agent)
		}
		for i := 0; i < 3; i++ {
			b := Batch{Host: fmt.Sprintf("hv%d", i), Samples: cycleSamples(5, time.Now(), 1)}
			if err := s.Put(b); err != nil {
				t.Fatal(err)
			}
			seq := s.mem[len(s.mem)-1].b.Seq
			if seq <= last {
				t.Fatalf("run %d: seq %d after %d", run, seq, last)
			}
			last = seq
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(Batch{Host: "hv1", Samples: cycleSamples(1, time.Now(), 1)}); err != ErrClosed {
			t.Fatalf("Put after Close: %v", err)
		}
	}
	// Everything Put is spooled: 3 runs of 3 batches of 5 samples.
	s := openTestShipper(t, dir, ShipperOptions{})
	if st := s.Stats(); st.SpooledBatches != 9 || st.SpooledSamples != 45 || st.QueuedSamples != 45 {
		t.Fatalf("stats after 3 runs: %+v", st)
	}
}

// Puts merge into one batch per host up to BatchMaxSamples; larger ones are split.
func TestShipperMergeAndSplit(t *testing.T) {
	s := openTestShipper(t, t.TempDir(), ShipperOptions{BatchMaxSamples: 100, FlushInterval: time.Hour})
	now := time.Now()
	for i := 0; i < 5; i++ { // 5 x 40 samples of hv1: 80 + 80 + 40 (two of 40 fit in 100)
		if err := s.Put(Batch{Host: "hv1", Samples: cycleSamples(40, now.Add(time.Duration(i)*time.Second), 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(Batch{Host: "hv2", Samples: cycleSamples(250, now, 1), Events: []health.Event{
		stateEvent("hv2", "a", now, health.OK, health.Warning, 1), stateEvent("hv2", "b", now, health.OK, health.Warning, 1),
		stateEvent("hv2", "c", now, health.OK, health.Warning, 1)}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, q := range s.mem {
		got = append(got, fmt.Sprintf("%s:%d:%d:%d", q.b.Host, q.b.Seq, len(q.b.Samples), len(q.b.Events)))
	}
	// hv2's 250 samples: 100 + 100 + 50, the events with the last part.
	want := "[hv1:1:80:0 hv1:2:80:0 hv1:3:40:0 hv2:4:100:0 hv2:5:100:0 hv2:6:50:3]"
	if fmt.Sprint(got) != want {
		t.Fatalf("queue %v, want %s", got, want)
	}
	if st := s.Stats(); st.MemorySamples != 450 {
		t.Fatalf("memory samples %d, want 450", st.MemorySamples)
	}
	// a batch with health events is sealed at once (the server waits for them) and takes no more
	last := s.mem[len(s.mem)-1]
	if !s.sealed(last, now) {
		t.Error("hv2's batch with events is not sealed: it would wait FlushInterval (an hour here)")
	}
	if err := s.Put(Batch{Host: "hv2", Samples: cycleSamples(10, now, 1)}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.mem); n != 7 || len(s.mem[6].b.Events) != 0 || len(last.b.Samples) != 50 {
		t.Errorf("after 10 more hv2 samples: %d batches, the new one with %d events, the evented one with %d samples; want 7, 0, 50",
			n, len(s.mem[n-1].b.Events), len(last.b.Samples))
	}
}

// Memory is bounded: beyond MaxMemorySamples the oldest batches go to the spool.
func TestShipperMemoryBound(t *testing.T) {
	s := openTestShipper(t, t.TempDir(), ShipperOptions{MaxMemorySamples: 100, BatchMaxSamples: 40})
	for i := 0; i < 10; i++ {
		if err := s.Put(Batch{Host: "hv1", Samples: cycleSamples(40, time.Now(), 1)}); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.MemorySamples > 100 {
			t.Fatalf("after %d puts: %d samples in memory", i+1, st.MemorySamples)
		}
	}
	st := s.Stats()
	// 400 samples in batches of 40: at most 2 batches (80) fit in memory, 8 are spooled.
	if st.MemoryBatches != 2 || st.SpooledBatches != 8 || st.QueuedSamples != 400 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if s.sp.head().seq != 1 {
		t.Fatalf("spool head seq %d, want the oldest batch, 1", s.sp.head().seq)
	}
}

// When the disk budget is spent, the oldest spooled batches are dropped, and counted.
func TestShipperDiskBudgetDropsOldest(t *testing.T) {
	const budget = 256 << 10
	s := openTestShipper(t, t.TempDir(), ShipperOptions{MaxMemorySamples: 1, MaxDiskBytes: budget, BatchMaxSamples: 200})
	const puts = 200
	for i := 0; i < puts; i++ {
		if err := s.Put(Batch{Host: "hv1", Samples: cycleSamples(200, time.Now(), float64(i))}); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.SpooledBytes > budget {
			t.Fatalf("after %d puts: %d bytes spooled, over the %d budget", i+1, st.SpooledBytes, budget)
		}
	}
	st := s.Stats()
	if st.Dropped == 0 || st.Dropped+int64(st.SpooledBatches) != puts || st.DroppedSamples != st.Dropped*200 {
		t.Fatalf("stats %+v: want some of %d batches dropped, the rest spooled", st, puts)
	}
	// The oldest went: what is left are the newest, in order, up to the last Put.
	first := s.sp.head().seq
	if first != uint64(st.Dropped)+1 {
		t.Fatalf("oldest spooled seq %d, want %d (after %d dropped)", first, st.Dropped+1, st.Dropped)
	}
	last := s.sp.segs[len(s.sp.segs)-1].recs
	if last[len(last)-1].seq != puts {
		t.Fatalf("newest spooled seq %d, want %d", last[len(last)-1].seq, puts)
	}
}
