package store_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/sql/queries"
)

// Every named query parses and refers to columns that exist.
func TestQueriesPrepare(t *testing.T) {
	_, pool := testenv.MigratedSchema(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	set, err := queries.Load()
	if err != nil {
		t.Fatal(err)
	}
	for name, sql := range set {
		if _, err := conn.Conn().Prepare(ctx, name, sql); err != nil {
			t.Errorf("query %s does not prepare: %v", name, err)
		}
	}
}

var hvs = []config.Hypervisor{
	{Name: "hv1", URI: "qemu+tcp://198.18.0.2/system", MigrationURI: "tcp://198.18.0.2",
		BMC: config.BMC{Host: "127.0.0.1", Port: 16623, Username: "admin", CipherSuite: 3}},
	{Name: "hv2", URI: "qemu+tcp://198.18.0.3/system"},
}

func newStore(t *testing.T) (*store.Store, func(string) int) {
	_, pool := testenv.MigratedSchema(t)
	s := store.New(pool)
	if err := s.SyncHypervisors(context.Background(), hvs); err != nil {
		t.Fatal(err)
	}
	count := func(sql string) int {
		var n int
		if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return s, count
}

func TestSyncHypervisorsIdempotent(t *testing.T) {
	s, count := newStore(t)
	ctx := context.Background()
	if err := s.SyncHypervisors(ctx, hvs); err != nil { // second time: nothing changes
		t.Fatal(err)
	}
	if n := count("SELECT count(*) FROM hypervisors"); n != 2 {
		t.Fatalf("hypervisors = %d, want 2", n)
	}
	if n := count("SELECT count(*) FROM bmcs WHERE port = 16623 AND interface = 'lanplus'"); n != 1 {
		t.Fatalf("bmc rows = %d, want 1 (hv2 has none)", n)
	}
	changed := append([]config.Hypervisor(nil), hvs...)
	changed[1].URI = "qemu+tcp://198.18.0.9/system"
	if err := s.SyncHypervisors(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if n := count("SELECT count(*) FROM hypervisors WHERE uri LIKE '%198.18.0.9%'"); n != 1 {
		t.Fatal("changed URI not recorded")
	}
}

func TestVnodeLifecycle(t *testing.T) {
	s, count := newStore(t)
	ctx := context.Background()
	job := int64(42)
	err := s.VnodeBooting(ctx, store.Boot{Name: "vn1", Address: netip.MustParsePrefix("198.18.0.11/24"),
		MAC: "52:54:00:12:00:0b", CPUs: 1, MemoryMiB: 512, Hypervisor: "hv1", DomainUUID: "0f6c1a8e-3a55-4c1e-9d8e-2b7c5e0d9a11", JobID: &job})
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.GetVnode(ctx, "vn1")
	if err != nil {
		t.Fatal(err)
	}
	if v.State != "booting" || v.Hypervisor != "hv1" || v.JobID == nil || *v.JobID != 42 || v.DomainUUID == nil {
		t.Fatalf("after boot: %+v", v)
	}
	if err := s.VnodesRunning(ctx, []string{"vn1", "vn7"}, 43); err != nil { // vn7 unknown: ignored
		t.Fatal(err)
	}
	if v, _ = s.GetVnode(ctx, "vn1"); v.State != "running" || *v.JobID != 43 || v.Hypervisor != "hv1" {
		t.Fatalf("after job start: %+v", v)
	}
	hv2 := "hv2"
	if err := s.SetVnodeState(ctx, "vn1", "running", "", &hv2); err != nil {
		t.Fatal(err)
	}
	if v, _ = s.GetVnode(ctx, "vn1"); v.State != "running" || v.Hypervisor != "hv2" {
		t.Fatalf("after move: %+v", v)
	}
	none := ""
	if err := s.SetVnodeState(ctx, "vn1", "absent", "suspended by Slurm", &none); err != nil {
		t.Fatal(err)
	}
	if v, _ = s.GetVnode(ctx, "vn1"); v.State != "absent" || v.Hypervisor != "" || v.JobID != nil || v.Reason != "suspended by Slurm" {
		t.Fatalf("after suspend: %+v", v)
	}
	if err := s.VnodeEvent(ctx, "vn1", "suspend", "hv2", map[string]any{"by": "test"}); err != nil {
		t.Fatal(err)
	}
	if n := count("SELECT count(*) FROM vnode_events WHERE detail->>'by' = 'test' AND hypervisor_id IS NOT NULL"); n != 1 {
		t.Fatalf("events = %d", n)
	}
	if _, err := s.GetVnode(ctx, "vn9"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing vnode: err = %v", err)
	}
	// A state the schema does not know is refused, not stored.
	if err := s.SetVnodeState(ctx, "vn1", "exploded", "", nil); err == nil {
		t.Fatal("unknown state accepted")
	}
}

// A vanished VM is recorded only while the row still says what the caller read: row and event
// together, or neither.
func TestVnodeVanished(t *testing.T) {
	s, count := newStore(t)
	ctx := context.Background()
	for _, n := range []string{"vn1", "vn2"} {
		if err := s.VnodeBooting(ctx, store.Boot{Name: n, Address: netip.MustParsePrefix("198.18.0.11/24"),
			MAC: "52:54:00:12:00:0b", CPUs: 1, MemoryMiB: 512, Hypervisor: "hv1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.VnodesRunning(ctx, []string{"vn1", "vn2"}, 7); err != nil {
		t.Fatal(err)
	}
	live, err := s.LiveVnodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 2 || live[0] != (store.LiveVnode{Name: "vn1", State: "running", Hypervisor: "hv1"}) || live[1].Name != "vn2" {
		t.Fatalf("LiveVnodes = %+v", live)
	}
	// stale reads: another state, another hypervisor
	for _, c := range []struct{ state, hv string }{{"booting", "hv1"}, {"running", "hv2"}, {"running", ""}} {
		ok, err := s.VnodeVanished(ctx, "vn1", c.state, c.hv, "gone", map[string]any{"by": "test"})
		if err != nil || ok {
			t.Errorf("VnodeVanished(vn1 read as %s on %q) = %v, %v; want false: the row says running on hv1", c.state, c.hv, ok, err)
		}
	}
	if n := count("SELECT count(*) FROM vnode_events WHERE event = 'vanished'"); n != 0 {
		t.Fatalf("%d vanished events after refused writes", n)
	}
	ok, err := s.VnodeVanished(ctx, "vn1", "running", "hv1", "its VM is on none of hv1, hv2", map[string]any{"by": "test"})
	if err != nil || !ok {
		t.Fatalf("VnodeVanished = %v, %v", ok, err)
	}
	if v, _ := s.GetVnode(ctx, "vn1"); v.State != "failed" || v.Reason != "its VM is on none of hv1, hv2" || v.Hypervisor != "hv1" {
		t.Errorf("after vanishing: %+v", v)
	}
	if n := count("SELECT count(*) FROM vnode_events WHERE event = 'vanished' AND vnode = 'vn1' AND detail->>'by' = 'test' AND hypervisor_id IS NOT NULL"); n != 1 {
		t.Errorf("%d vanished events for vn1, want 1", n)
	}
	// a second report finds it failed: nothing more is written
	if ok, _ := s.VnodeVanished(ctx, "vn1", "running", "hv1", "again", nil); ok {
		t.Error("a failed vnode was recorded vanished again")
	}
	if live, _ = s.LiveVnodes(ctx); len(live) != 1 || live[0].Name != "vn2" {
		t.Errorf("LiveVnodes after vn1 failed = %+v", live)
	}
}

// Names that look like SQL are data: a valid one is stored verbatim, an invalid node name refused.
func TestSQLLookingInput(t *testing.T) {
	s, count := newStore(t)
	ctx := context.Background()
	evil := "x'); DROP TABLE jobs; --"
	if err := s.JobStarted(ctx, store.Job{ID: 7, Name: evil, User: "alice", Partition: "migratable", Nodes: []string{"vn1"}}); err != nil {
		t.Fatal(err)
	}
	j, err := s.GetJob(ctx, 7)
	if err != nil || j.Name != evil || j.State != "running" {
		t.Fatalf("job = %+v, err %v", j, err)
	}
	if err := s.SetVnodeState(ctx, "vn1'; DROP TABLE vnodes; --", "running", "", nil); err == nil {
		t.Fatal("invalid vnode name accepted")
	}
	if n := count("SELECT count(*) FROM jobs"); n != 1 {
		t.Fatalf("jobs = %d", n)
	}
}

func TestJobEnd(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	limit := 90 * time.Minute
	cpus := 2
	if err := s.JobStarted(ctx, store.Job{ID: 9, Name: "ticker", User: "bob", Partition: "migratable",
		Nodes: []string{"vn1", "vn2"}, CPUs: &cpus, TimeLimit: &limit, Hints: []string{"drover:spread"}}); err != nil {
		t.Fatal(err)
	}
	code := 3
	if err := s.JobEnded(ctx, store.Job{ID: 9, State: "failed", ExitCode: &code}); err != nil {
		t.Fatal(err)
	}
	j, err := s.GetJob(ctx, 9)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != "failed" || j.ExitCode == nil || *j.ExitCode != 3 || j.EndedAt == nil || j.Name != "ticker" ||
		j.TimeLimit == nil || *j.TimeLimit != limit || len(j.Hints) != 1 || len(j.Nodes) != 2 {
		t.Fatalf("job = %+v", j)
	}
	// An epilog for a job whose prolog was never seen still records it.
	if err := s.JobEnded(ctx, store.Job{ID: 10, Name: "late", State: "completed", ExitCode: new(int)}); err != nil {
		t.Fatal(err)
	}
}

func TestMigrationJournal(t *testing.T) {
	s, count := newStore(t)
	ctx := context.Background()
	id, err := s.InsertMigration(ctx, store.NewMigration{VNode: "vn1", Src: "hv1", Dst: "hv2", Reason: "manual", Params: map[string]any{"max_downtime_ms": 50}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.InsertMigration(ctx, store.NewMigration{VNode: "vn1", Src: "hv2", Dst: "hv1", Reason: "manual"}); !errors.Is(err, store.ErrMigrationActive) {
		t.Fatalf("second active migration: err = %v", err)
	}
	if _, err := s.InsertMigration(ctx, store.NewMigration{VNode: "vn2", Src: "hv1", Dst: "hv7", Reason: "manual"}); err == nil || !strings.Contains(err.Error(), "not recorded") {
		t.Fatalf("unknown hypervisor: err = %v", err)
	}
	for _, p := range []string{"preparing", "transferring", "switching_over", "verifying", "done"} {
		if err := s.SetMigrationPhase(ctx, id, p, "", map[string]any{"phase": p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetMigrationFigures(ctx, id, store.MigrationFigures{Total: 2500 * time.Millisecond, Downtime: 21 * time.Millisecond, BytesTotal: 1 << 29, BytesProcessed: 1 << 28, Iterations: 3}); err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMigration(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Phase != "done" || m.Src != "hv1" || m.Dst != "hv2" || m.StartedAt == nil || m.FirstByte == nil || m.FinishedAt == nil ||
		*m.TotalMS != 2500 || *m.DowntimeMS != 21 || *m.Iterations != 3 {
		t.Fatalf("migration = %+v", m)
	}
	if n := count("SELECT count(*) FROM migration_events"); n != 5 {
		t.Fatalf("events = %d, want 5", n)
	}
	// Finished: a new migration of the same vnode is allowed.
	if _, err := s.InsertMigration(ctx, store.NewMigration{VNode: "vn1", Src: "hv2", Dst: "hv1", Reason: "rebalance"}); err != nil {
		t.Fatal(err)
	}
}

func TestPlacement(t *testing.T) {
	s, count := newStore(t)
	id, err := s.InsertPlacement(context.Background(), store.Placement{VNode: "vn1", Outcome: "placed", Hypervisor: "hv2",
		Policy: "least-loaded", Reason: "fewest vnodes", Explain: map[string]any{"hv1": map[string]any{"vnodes": 2}}})
	if err != nil || id == 0 {
		t.Fatalf("id %d err %v", id, err)
	}
	if n := count("SELECT count(*) FROM placements WHERE explain->'hv1'->>'vnodes' = '2' AND hypervisor_id IS NOT NULL"); n != 1 {
		t.Fatal("explain document not stored")
	}
}
