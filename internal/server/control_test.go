package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/server"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/internal/virt"
	"github.com/drover-hpc/drover/migrate"
	"github.com/drover-hpc/drover/scheduler"
)

// These tests run a real Server with its control loop in a schema of their own, against the
// testbed's two libvirt hypervisors: one small heartbeat guest, booted on hv1, recorded as a
// running vnode.

// ctlBed is one control-loop test: the schema, its store, a connection pool to libvirt and a guest.
type ctlBed struct {
	cfg    *config.Config
	pool   *pgxpool.Pool
	st     *store.Store
	conns  *migrate.Pool
	vnode  string
	serial string
	ids    map[string]int
}

func newCtlBed(t *testing.T, ctx context.Context) *ctlBed {
	t.Helper()
	cfg := testenv.Config(t)
	if len(cfg.Hypervisors) < 2 {
		t.Fatalf("testbed has %d hypervisors, want 2", len(cfg.Hypervisors))
	}
	_, pool := testenv.MigratedSchema(t)
	b := &ctlBed{cfg: cfg, pool: pool, st: store.New(pool), conns: migrate.NewPool(cfg.Hypervisors, cfg.Libvirt.ConnectTimeout),
		ids: map[string]int{}}
	t.Cleanup(func() { _ = b.conns.Close() })
	if err := b.st.SyncHypervisors(ctx, cfg.Hypervisors); err != nil {
		t.Fatal(err)
	}
	// capacity and fresh KPIs: without them the placement filters drop both hosts as stale
	b.exec(t, ctx, `UPDATE hypervisors SET cpus = 8, memory_mib = 8192`)
	b.exec(t, ctx, `INSERT INTO host_kpi_now (hypervisor_id, ts, load1, cpu_busy_ratio, mem_available_bytes)
	                SELECT id, now(), 0.1, 0.05, 4e9 FROM hypervisors`)
	rows, err := pool.Query(ctx, `SELECT name, id FROM hypervisors`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		var id int
		if err := rows.Scan(&n, &id); err != nil {
			t.Fatal(err)
		}
		b.ids[n] = id
	}
	rows.Close()

	b.vnode = fmt.Sprintf("ctl-%d-%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	b.serial = filepath.Join(t.TempDir(), b.vnode+".serial")
	img := filepath.Join(cfg.Testbed.Dir, "guest", "out")
	xml, err := virt.DomainSpec{Name: b.vnode, MemoryMiB: 128, VCPUs: 1, Type: virt.DomainType(cfg.Libvirt.DomainType),
		Kernel: filepath.Join(img, "vmlinuz"), Initrd: filepath.Join(img, "initramfs.cpio.gz"),
		Cmdline: "console=ttyS0 quiet panic=-1", SerialLog: b.serial}.XML()
	if err != nil {
		t.Fatal(err)
	}
	hv1, err := b.conns.Conn(ctx, "hv1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := hv1.Create(ctx, xml)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // wherever the guest ended up
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, h := range cfg.Hypervisors {
			c, err := b.conns.Conn(ctx, h.Name)
			if err != nil {
				t.Errorf("cleanup: %v", err)
				continue
			}
			if err := c.Destroy(ctx, b.vnode); err != nil && !errors.Is(err, virt.ErrNoDomain) && !errors.Is(err, virt.ErrWrongState) {
				t.Errorf("cleanup on %s: %v", h.Name, err)
			}
		}
	})
	if err := b.st.VnodeBooting(ctx, store.Boot{Name: b.vnode, CPUs: 1, MemoryMiB: 128, Hypervisor: "hv1", DomainUUID: d.UUID}); err != nil {
		t.Fatal(err)
	}
	if err := b.st.SetVnodeState(ctx, b.vnode, "running", "", nil); err != nil {
		t.Fatal(err)
	}
	b.heartbeats(t, 2, 90*time.Second)
	return b
}

func (b *ctlBed) exec(t *testing.T, ctx context.Context, sql string, args ...any) {
	t.Helper()
	if _, err := b.pool.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// heartbeats waits until the guest's console shows n more heartbeat lines than now.
func (b *ctlBed) heartbeats(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	count := func() int {
		data, _ := os.ReadFile(b.serial)
		return strings.Count(string(data), "\nHB ")
	}
	want := count() + n
	for deadline := time.Now().Add(timeout); count() < want; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeats not seen within %v", n, timeout)
		}
	}
}

// health inserts a state event for hv (the trigger updates host_health and NOTIFYs) and returns
// its id.
func (b *ctlBed) health(t *testing.T, ctx context.Context, hv, from, to string) int64 {
	t.Helper()
	var id int64
	err := b.pool.QueryRow(ctx, `INSERT INTO health_events (hypervisor_id, sensor, kind, from_state, to_state, value, threshold, message)
	    VALUES ($1, 'cpu_temp', 'state', $2, $3, 95, 90, 'control loop test') RETURNING id`, b.ids[hv], from, to).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// runsOn checks the guest runs on want and nowhere else, and that its row says so.
func (b *ctlBed) runsOn(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	testenv.RunsOnly(t, ctx, b.conns.Conn, b.cfg.Hypervisors, b.vnode, want)
	v, err := b.st.GetVnode(ctx, b.vnode)
	if err != nil || v.State != "running" || v.Hypervisor != want {
		t.Fatalf("vnode row = %+v, %v; want running on %s", v, err, want)
	}
}

// migrationDone waits for the guest's n-th migration to end and for the control loop to record
// its data (decided_at, written once Migrate returns), and returns it with its params.
func (b *ctlBed) migrationDone(t *testing.T, ctx context.Context, n int, timeout time.Duration) (store.Migration, map[string]any) {
	t.Helper()
	var m store.Migration
	params := map[string]any{}
	waitFor(t, fmt.Sprintf("migration %d of %s to end and be recorded", n, b.vnode), timeout, func() bool {
		ms, err := b.st.MigrationsOfVnode(ctx, b.vnode)
		if err != nil || len(ms) < n {
			return false
		}
		m = ms[n-1]
		if m.Phase != "done" && m.Phase != "failed" && m.Phase != "rolled_back" {
			return false
		}
		var raw []byte
		var plan *int64
		if err := b.pool.QueryRow(ctx, `SELECT params, plan_id FROM migrations WHERE id = $1`, m.ID).Scan(&raw, &plan); err != nil {
			t.Fatal(err)
		}
		clear(params)
		if err := json.Unmarshal(raw, &params); err != nil {
			t.Fatal(err)
		}
		if plan != nil {
			params["plan_id"] = float64(*plan)
		}
		return params["decided_at"] != nil
	})
	return m, params
}

type fakeDrainer struct {
	mu    sync.Mutex
	nodes []string
}

func (f *fakeDrainer) Drain(_ context.Context, node, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes = append(f.nodes, node+": "+reason)
	return nil
}

func (f *fakeDrainer) Resume(_ context.Context, node string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes = append(f.nodes, node+": resumed")
	return nil
}

func (f *fakeDrainer) drained() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.nodes...)
}

// controller builds a control loop over the bed with a real executor.
func (b *ctlBed) controller(t *testing.T, mode string, drain server.Drainer) *server.Controller {
	t.Helper()
	pipe, err := scheduler.NewPipeline(scheduler.Config{})
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t))
	ex := migrate.New(config.Migration{MaxDowntime: 50 * time.Millisecond, Timeout: 2 * time.Minute, VerifyFor: 2500 * time.Millisecond},
		b.st, b.conns, log, migrate.WithOwner("test:"+t.Name()), migrate.WithProgressInterval(100*time.Millisecond))
	c, err := server.NewController(server.ControlConfig{Mode: mode, Period: 2 * time.Second, Instance: t.Name(),
		Rebalance: scheduler.RebalanceConfig{Aggressiveness: 1},
		Warm: func(ctx context.Context) {
			for _, h := range b.cfg.Hypervisors {
				_, _ = b.conns.Conn(ctx, h.Name)
			}
		},
		SerialLog: func(vn string) string {
			if vn == b.vnode {
				return b.serial
			}
			return ""
		}}, b.pool, pipe, ex, drain, log)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runServer runs a Server with the control loop until the test ends and waits for it to lead.
func (b *ctlBed) runServer(t *testing.T, c *server.Controller) *server.Server {
	t.Helper()
	s, err := server.New(server.Config{Listen: "127.0.0.1:0", Token: token, Instance: t.Name(), Refresh: 200 * time.Millisecond,
		Control: c}, b.pool, scheduler.LeastLoaded{}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s)
	waitFor(t, "leadership", 10*time.Second, s.Leading)
	return s
}

// A critical hv1 is evacuated at once: the guest is live-migrated to hv2 with reason evacuation,
// the journal row knows the triggering event and its first byte, the guest runs exactly once, on
// hv2, and hv1 is drained in Slurm. Then hv1 recovers and an operator drains hv2: the loop moves
// the guest back (reason drain) and marks hv2 drained.
func TestControlLoopEvacuatesCriticalHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b := newCtlBed(t, ctx)
	b.exec(t, ctx, `UPDATE hypervisors SET slurm_node = 'hv1-node' WHERE name = 'hv1'`)
	drainer := &fakeDrainer{}
	c := b.controller(t, server.ModeAuto, drainer)
	b.runServer(t, c)

	event := b.health(t, ctx, "hv1", "ok", "critical")
	m, params := b.migrationDone(t, ctx, 1, 2*time.Minute)
	if m.Phase != "done" || m.Reason != "evacuation" || m.Src != "hv1" || m.Dst != "hv2" || m.FirstByte == nil {
		t.Fatalf("evacuation journal row = %+v", m)
	}
	if id, _ := params["trigger_event_id"].(float64); int64(id) != event {
		t.Errorf("params trigger_event_id = %v, want %d (params %v)", params["trigger_event_id"], event, params)
	}
	ms, ok := params["trigger_to_first_byte_ms"].(float64)
	if !ok || ms <= 0 {
		t.Errorf("params trigger_to_first_byte_ms = %v, want a positive figure", params["trigger_to_first_byte_ms"])
	}
	t.Logf("evacuation of %s: health event → first byte %.0f ms (→ handed to libvirt %v ms), decision → first byte %v ms, QEMU total %v ms",
		b.vnode, ms, params["trigger_to_started_ms"], params["decided_to_first_byte_ms"], deref(m.TotalMS))
	b.runsOn(t, ctx, "hv2")
	b.heartbeats(t, 1, 30*time.Second)
	waitFor(t, "hv1 drained in Slurm", 10*time.Second, func() bool { return len(drainer.drained()) > 0 })
	if got := drainer.drained(); len(got) != 1 || !strings.HasPrefix(got[0], "hv1-node: drover evacuation: hv1 is critical") {
		t.Errorf("Slurm drains = %q, want one of hv1-node for the evacuation", got)
	}

	// hv1 recovers: the loop resumes it in Slurm; hv2 goes into maintenance (KPIs kept fresh:
	// they are stale after 90 s)
	b.health(t, ctx, "hv1", "critical", "ok")
	b.exec(t, ctx, `UPDATE host_kpi_now SET ts = now()`)
	waitFor(t, "hv1 resumed in Slurm", 20*time.Second, func() bool { return len(drainer.drained()) > 1 })
	if got := drainer.drained(); len(got) != 2 || got[1] != "hv1-node: resumed" {
		t.Errorf("Slurm calls = %q, want hv1-node drained then resumed", got)
	}
	if _, err := c.Drain(ctx, "hv9", "test"); err == nil || !strings.Contains(err.Error(), "known: [hv1 hv2]") {
		t.Errorf("drain of an unknown hypervisor: err = %v, want one naming hv1 and hv2", err)
	}
	old, err := c.Drain(ctx, "hv2", "test")
	if err != nil || old != "active" {
		t.Fatalf("drain hv2: %q, %v", old, err)
	}
	m, _ = b.migrationDone(t, ctx, 2, 2*time.Minute)
	if m.Phase != "done" || m.Reason != "drain" || m.Src != "hv2" || m.Dst != "hv1" {
		t.Fatalf("drain journal row = %+v", m)
	}
	b.runsOn(t, ctx, "hv1")
	waitFor(t, "hv2 drained", 20*time.Second, func() bool {
		d, err := c.DrainProgress(ctx, "hv2")
		return err == nil && d.State == "drained" && len(d.VNodes) == 0
	})
	if old, err := c.Undrain(ctx, "hv2", "test"); err != nil || old != "drained" {
		t.Errorf("undrain hv2: %q, %v", old, err)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// Recommend mode: a critical hv1 gives a pending plan, nothing moves; approving it runs the move
// (journaled with the plan id) and the plan ends applied; approving it again is refused; a plan
// whose vnode has moved since is refused as stale, with the reason, and marked stale.
func TestControlLoopRecommendAndApprove(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b := newCtlBed(t, ctx)
	c := b.controller(t, server.ModeRecommend, nil)
	b.runServer(t, c)

	b.health(t, ctx, "hv1", "ok", "critical")
	var plan store.Plan
	waitFor(t, "a proposed plan", 30*time.Second, func() bool {
		ps, err := c.Plans(ctx, 10, false)
		if err != nil || len(ps) == 0 {
			return false
		}
		plan = ps[0]
		return true
	})
	var moves []scheduler.Move
	if err := json.Unmarshal(plan.Actions, &moves); err != nil || plan.State != "pending" || plan.Kind != "evacuation" ||
		len(moves) != 1 || moves[0].VNode != b.vnode || moves[0].From != "hv1" || moves[0].To != "hv2" {
		t.Fatalf("plan = %+v (moves %+v, %v)", plan, moves, err)
	}
	time.Sleep(3 * time.Second) // a cycle or two: the same moves are not proposed again, nothing moves
	if ps, _ := c.Plans(ctx, 10, true); len(ps) != 1 {
		t.Errorf("%d plans after more cycles, want the one", len(ps))
	}
	if ms, _ := b.st.MigrationsOfVnode(ctx, b.vnode); len(ms) != 0 {
		t.Fatalf("recommend mode migrated: %+v", ms)
	}

	outs, err := c.Approve(ctx, plan.ID, "tester", nil)
	if err != nil || len(outs) != 1 || outs[0].Err != nil {
		t.Fatalf("approve: %+v, %v", outs, err)
	}
	m, params := b.migrationDone(t, ctx, 1, time.Minute)
	if m.Phase != "done" || m.Reason != "evacuation" || params["plan_id"] != float64(plan.ID) {
		t.Errorf("journal row %+v params %v, want done evacuation of plan %d", m, params, plan.ID)
	}
	b.runsOn(t, ctx, "hv2")
	p, err := b.st.GetPlan(ctx, plan.ID)
	if err != nil || p.State != "applied" || p.DecidedBy != "tester" || !strings.Contains(p.Outcome, "done (migration") {
		t.Errorf("plan after approval = %+v, %v", p, err)
	}
	if _, err := c.Approve(ctx, plan.ID, "tester", nil); !errors.Is(err, store.ErrPlanDecided) || !strings.Contains(err.Error(), "it is applied") {
		t.Errorf("second approval: err = %v, want ErrPlanDecided saying applied", err)
	}
	if _, err := c.Approve(ctx, 999999, "tester", nil); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), fmt.Sprint(plan.ID)) {
		t.Errorf("approval of an unknown plan: err = %v, want ErrNotFound naming plan %d", err, plan.ID)
	}

	// a plan that moved the guest from hv1 while it runs on hv2 now
	stale, err := b.st.InsertPlan(ctx, "rebalance", "by hand", []scheduler.Move{{VNode: b.vnode, From: "hv1", To: "hv2", Reason: "rebalance", Priority: 1}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Approve(ctx, stale, "tester", nil); !errors.Is(err, server.ErrStalePlan) || !strings.Contains(err.Error(), "now runs on hv2, not hv1") {
		t.Errorf("approval of a stale plan: err = %v, want ErrStalePlan saying where the vnode runs", err)
	}
	if p, err := b.st.GetPlan(ctx, stale); err != nil || p.State != "stale" || !strings.Contains(p.Outcome, "now runs on hv2") {
		t.Errorf("stale plan = %+v, %v", p, err)
	}
	if ms, _ := b.st.MigrationsOfVnode(ctx, b.vnode); len(ms) != 1 {
		t.Errorf("%d migrations after the stale approval, want still 1", len(ms))
	}
	// reject: only pending plans
	if err := c.Reject(ctx, stale, "tester", "no"); !errors.Is(err, store.ErrPlanDecided) {
		t.Errorf("reject of a stale plan: err = %v, want ErrPlanDecided", err)
	}
}

// fakeMigrator blocks each Migrate until its context ends, as a long transfer would, and counts
// calls per owner.
type fakeMigrator struct {
	name    string
	mu      sync.Mutex
	started []string
	aborted []string
	recon   int
	running chan string
}

func (f *fakeMigrator) Migrate(ctx context.Context, req migrate.Request, _ func(migrate.Event)) (migrate.Result, error) {
	f.mu.Lock()
	f.started = append(f.started, req.VNode+"→"+req.To+" ("+req.Reason+")")
	f.mu.Unlock()
	f.running <- f.name
	<-ctx.Done()
	f.mu.Lock()
	f.aborted = append(f.aborted, req.VNode)
	f.mu.Unlock()
	return migrate.Result{VNode: req.VNode, To: req.To}, &migrate.Error{VNode: req.VNode, To: req.To, Err: migrate.ErrAborted}
}

func (f *fakeMigrator) Reconcile(context.Context) ([]migrate.Finding, error) {
	f.mu.Lock()
	f.recon++
	f.mu.Unlock()
	return nil, nil
}

func (f *fakeMigrator) counts() (started, aborted, recon int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.started), len(f.aborted), f.recon
}

// Two servers with control loops on one database: only the leader moves the vnode of a critical
// host; when it stops, its migration is aborted before it lets go, and the other server takes
// over, reconciles first, then moves the vnode itself. No libvirt is needed: the executor is a
// fake that runs until cancelled.
func TestControlLoopOnlyLeaderActs(t *testing.T) {
	_, pool := testenv.MigratedSchema(t)
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO hypervisors (name, uri, cpus, memory_mib) VALUES ('hv-a', 'qemu+tcp://a/system', 8, 16384), ('hv-b', 'qemu+tcp://b/system', 8, 16384)`,
		`INSERT INTO host_kpi_now (hypervisor_id, ts, load1) SELECT id, now(), 0.5 FROM hypervisors`,
		`INSERT INTO vnodes (name, cpus, memory_mib, state, hypervisor_id) SELECT 'vn1', 1, 512, 'running', id FROM hypervisors WHERE name = 'hv-a'`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	running := make(chan string, 4)
	pipe, err := scheduler.NewPipeline(scheduler.Config{})
	if err != nil {
		t.Fatal(err)
	}
	migs := map[string]*fakeMigrator{}
	stops := map[string]context.CancelFunc{}
	servers := map[string]*server.Server{}
	for _, name := range []string{"a", "b"} {
		f := &fakeMigrator{name: name, running: running}
		c, err := server.NewController(server.ControlConfig{Period: 500 * time.Millisecond, Instance: name,
			Rebalance: scheduler.RebalanceConfig{Aggressiveness: 1}}, pool, pipe, f, nil, zerolog.New(zerolog.NewTestWriter(t)))
		if err != nil {
			t.Fatal(err)
		}
		s, err := server.New(server.Config{Listen: "127.0.0.1:0", Token: token, Instance: name, Refresh: 200 * time.Millisecond, Control: c},
			pool, scheduler.LeastLoaded{}, zerolog.New(zerolog.NewTestWriter(t)))
		if err != nil {
			t.Fatal(err)
		}
		stops[name] = serve(t, s)
		migs[name], servers[name] = f, s
	}
	waitFor(t, "a leader", 10*time.Second, func() bool { return servers["a"].Leading() || servers["b"].Leading() })
	leader, follower := "a", "b"
	if servers["b"].Leading() {
		leader, follower = "b", "a"
	}
	if _, err := pool.Exec(ctx, `INSERT INTO health_events (hypervisor_id, sensor, kind, from_state, to_state)
	    SELECT id, 'cpu_temp', 'state', 'ok', 'critical' FROM hypervisors WHERE name = 'hv-a'`); err != nil {
		t.Fatal(err)
	}
	select {
	case who := <-running:
		if who != leader {
			t.Fatalf("server %s migrated, but %s leads", who, leader)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no migration started within 10 s of hv-a turning critical")
	}
	time.Sleep(1500 * time.Millisecond) // more cycles and events: no second start anywhere
	if s, _, _ := migs[leader].counts(); s != 1 {
		t.Errorf("leader started %d migrations of vn1, want 1 (in flight)", s)
	}
	if s, _, _ := migs[follower].counts(); s != 0 {
		t.Errorf("follower started %d migrations", s)
	}
	if _, _, r := migs[leader].counts(); r < 1 {
		t.Errorf("leader reconciled %d times, want at least once when it began to lead", r)
	}

	stops[leader]()
	if _, a, _ := migs[leader].counts(); a != 1 {
		t.Errorf("the stopped leader aborted %d migrations, want its 1 in flight", a)
	}
	select {
	case who := <-running:
		if who != follower {
			t.Fatalf("server %s migrated after the leader stopped, want %s", who, follower)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the new leader did not take the evacuation over within 15 s")
	}
	if _, _, r := migs[follower].counts(); r < 1 {
		t.Errorf("new leader reconciled %d times before migrating, want at least once", r)
	}
	migs[follower].mu.Lock()
	f := append([]string(nil), migs[follower].started...)
	migs[follower].mu.Unlock()
	if len(f) != 1 || f[0] != "vn1→hv-b (evacuation)" {
		t.Errorf("new leader started %q", f)
	}
}
