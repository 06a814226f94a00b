package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/internal/virt"
	"github.com/drover-hpc/drover/migrate"
)

// These tests run against the testbed (scripts/testbed up): two libvirt hypervisors and PostgreSQL.
// Each boots one small heartbeat guest on hv1 and records it as a vnode in a schema of its own.

// bed is one test's testbed: a journal, a connection pool and a guest recorded as a vnode.
type bed struct {
	cfg    *config.Config
	schema string
	st     *store.Store
	pool   *pgxpool.Pool // the test's schema
	conns  *migrate.Pool
	vnode  string
	serial string
}

func newBed(t *testing.T, ctx context.Context, cmdline string) *bed {
	return newNamedBed(t, ctx, "mig", cmdline)
}

// newNamedBed is newBed with the guest's name starting with prefix.
func newNamedBed(t *testing.T, ctx context.Context, prefix, cmdline string) *bed {
	t.Helper()
	cfg := testenv.Config(t)
	if len(cfg.Hypervisors) < 2 {
		t.Fatalf("testbed has %d hypervisors, want 2", len(cfg.Hypervisors))
	}
	schema, pool := testenv.MigratedSchema(t)
	b := &bed{cfg: cfg, schema: schema, st: store.New(pool), pool: pool, conns: migrate.NewPool(cfg.Hypervisors, cfg.Libvirt.ConnectTimeout)}
	t.Cleanup(func() { _ = b.conns.Close() })
	if err := b.st.SyncHypervisors(ctx, cfg.Hypervisors); err != nil {
		t.Fatal(err)
	}
	b.vnode = fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1_000_000)
	b.serial = filepath.Join(t.TempDir(), b.vnode+".serial")
	b.boot(t, ctx, b.vnode, cmdline, b.serial)
	b.heartbeats(t, 2, 90*time.Second)
	return b
}

// boot starts a guest called name on hv1, records it as a vnode there, and destroys it wherever it
// is when the test ends.
func (b *bed) boot(t *testing.T, ctx context.Context, name, cmdline, serial string) {
	t.Helper()
	img := filepath.Join(b.cfg.Testbed.Dir, "guest", "out")
	xml, err := virt.DomainSpec{Name: name, MemoryMiB: 128, VCPUs: 1, Type: virt.DomainType(b.cfg.Libvirt.DomainType),
		Kernel: filepath.Join(img, "vmlinuz"), Initrd: filepath.Join(img, "initramfs.cpio.gz"),
		Cmdline: "console=ttyS0 quiet panic=-1 " + cmdline, SerialLog: serial}.XML()
	if err != nil {
		t.Fatal(err)
	}
	hv1 := b.conn(t, ctx, "hv1")
	d, err := hv1.Create(ctx, xml)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { // wherever the guest ended up
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, h := range b.cfg.Hypervisors {
			c, err := b.conns.Conn(ctx, h.Name)
			if err != nil {
				t.Errorf("cleanup: %v", err)
				continue
			}
			if err := c.Destroy(ctx, name); err != nil && !errors.Is(err, virt.ErrNoDomain) && !errors.Is(err, virt.ErrWrongState) {
				t.Errorf("cleanup on %s: %v", h.Name, err)
			}
		}
	})
	if err := b.st.VnodeBooting(ctx, store.Boot{Name: name, CPUs: 1, MemoryMiB: 128, Hypervisor: "hv1", DomainUUID: d.UUID}); err != nil {
		t.Fatal(err)
	}
}

func (b *bed) conn(t *testing.T, ctx context.Context, name string) *virt.Conn {
	t.Helper()
	c, err := b.conns.Conn(ctx, name)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return c
}

// heartbeats waits until the guest's console shows n more heartbeat lines than now.
func (b *bed) heartbeats(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	count := func() int {
		data, _ := os.ReadFile(b.serial)
		return strings.Count(string(data), "\nHB ")
	}
	want := count() + n
	for deadline := time.Now().Add(timeout); count() < want; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(b.serial)
			t.Fatalf("%d heartbeats not seen within %v; console ends:\n%s", n, timeout, tail(data, 1500))
		}
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// runsOn checks where the guest is: running on want, absent from the others.
func (b *bed) runsOn(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	testenv.RunsOnly(t, ctx, b.conns.Conn, b.cfg.Hypervisors, b.vnode, want)
}

// row checks the vnodes row.
func (b *bed) row(t *testing.T, ctx context.Context, state, hv string) store.Vnode {
	t.Helper()
	v, err := b.st.GetVnode(ctx, b.vnode)
	if err != nil || v.State != state || v.Hypervisor != hv {
		t.Fatalf("vnode row = %+v, %v; want %s on %s", v, err, state, hv)
	}
	return v
}

// recorder keeps the events Migrate reports.
type recorder struct {
	mu     sync.Mutex
	phases []migrate.Phase
	moves  int // transfer progress events with bytes
	totals int // the completed transfer's closing progress event
	seen   chan migrate.Phase
}

func newRecorder() *recorder { return &recorder{seen: make(chan migrate.Phase, 16)} }

func (r *recorder) event(ev migrate.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Progress != nil {
		if ev.Progress.Completed {
			r.totals++
		} else if ev.Progress.DataProcessed > 0 {
			r.moves++
		}
		return
	}
	r.phases = append(r.phases, ev.Phase)
	select {
	case r.seen <- ev.Phase:
	default:
	}
}

func executor(t *testing.T, b *bed, conns migrate.Conns) *migrate.Executor {
	cfg := config.Migration{MaxDowntime: 50 * time.Millisecond, Timeout: 2 * time.Minute, VerifyFor: 2500 * time.Millisecond}
	return migrate.New(cfg, b.st, conns, zerolog.New(zerolog.NewTestWriter(t)), migrate.WithOwner("test:"+t.Name()))
}

func TestTestbedMigrateThereAndBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b := newBed(t, ctx, "dirty_mb=16 dirty_rate=8")
	ex := executor(t, b, b.conns)

	// the row claims hv2 while libvirt runs the guest on hv1: the executor believes libvirt
	hv2 := "hv2"
	if err := b.st.SetVnodeState(ctx, b.vnode, "running", "", &hv2); err != nil {
		t.Fatal(err)
	}
	for i, hop := range []struct{ from, to string }{{"hv1", "hv2"}, {"hv2", "hv1"}} {
		rec := newRecorder()
		start := time.Now()
		res, err := ex.Migrate(ctx, migrate.Request{VNode: b.vnode, To: hop.to, SerialLog: b.serial}, rec.event)
		if err != nil {
			t.Fatalf("hop %d: %v", i+1, err)
		}
		lv := res.Libvirt
		t.Logf("hop %d %s→%s: wall %v (libvirt call %v), QEMU %v, downtime %v, %.1f MiB sent of %.1f, %d iterations, "+
			"first byte %v after the call, verified %v (CPU %v, %d console lines), %d progress reports with data",
			i+1, res.From, res.To, res.Wall.Round(time.Millisecond), lv.Wall.Round(time.Millisecond), lv.Elapsed, lv.Downtime,
			float64(lv.DataProcessed)/(1<<20), float64(lv.DataTotal)/(1<<20), lv.Iterations, res.FirstByte.Round(time.Millisecond),
			res.Verification.Watched.Round(time.Millisecond), res.Verification.CPUTime, res.Verification.NewLines, rec.moves)
		if i == 0 && res.Corrected != "running on hv2" {
			t.Errorf("hop 1: Corrected = %q, want the row's claim %q", res.Corrected, "running on hv2")
		}
		// 128 MiB guest dirtying 16 MiB: at least that much crosses; a 50 ms target keeps the pause
		// well under 2 s even on a loaded TCG testbed
		if res.From != hop.from || res.To != hop.to || res.Phase != migrate.PhaseDone || res.ID == 0 ||
			lv.DataProcessed < 16<<20 || lv.Iterations < 1 || lv.Downtime <= 0 || lv.Downtime > 2*time.Second ||
			res.FirstByte <= 0 || res.FirstByte > res.Wall || res.Wall < time.Since(start)-time.Second {
			t.Errorf("hop %d: implausible result %+v", i+1, res)
		}
		v := res.Verification
		if !v.Passed || v.Watched < 2500*time.Millisecond || v.CPUTime <= 0 || v.NewLines < 1 || v.SerialLog != b.serial {
			t.Errorf("hop %d: verification %+v", i+1, v)
		}
		want := []migrate.Phase{migrate.PhasePlanned, migrate.PhasePreparing, migrate.PhaseTransferring,
			migrate.PhaseSwitchingOver, migrate.PhaseVerifying, migrate.PhaseDone}
		// a transfer shorter than a few progress intervals may give no reading with data
		if fmt.Sprint(rec.phases) != fmt.Sprint(want) || rec.moves == 0 && lv.Elapsed >= time.Second || rec.totals != 1 {
			t.Errorf("hop %d: phase events %v, %d progress events and %d closing totals; want %v, some and 1", i+1, rec.phases, rec.moves, rec.totals, want)
		}

		m, err := b.st.GetMigration(ctx, res.ID)
		if err != nil {
			t.Fatal(err)
		}
		if m.Phase != "done" || m.Src != hop.from || m.Dst != hop.to || m.Reason != "manual" || m.Error != "" ||
			m.StartedAt == nil || m.FirstByte == nil || m.FinishedAt == nil || m.TotalMS == nil || *m.TotalMS <= 0 ||
			m.DowntimeMS == nil || *m.DowntimeMS != float64(lv.Downtime.Milliseconds()) ||
			m.BytesSent == nil || *m.BytesSent != int64(lv.DataProcessed) || m.Iterations == nil || *m.Iterations != int(lv.Iterations) {
			t.Errorf("hop %d: journal row %+v", i+1, m)
		}
		evs, err := b.st.MigrationEvents(ctx, res.ID)
		if err != nil {
			t.Fatal(err)
		}
		var journaled []string
		for _, e := range evs {
			journaled = append(journaled, e.Phase)
		}
		if got := strings.Join(journaled, " "); got != "preparing transferring switching_over verifying done" {
			t.Errorf("hop %d: journal events %q", i+1, got)
		}
		b.runsOn(t, ctx, hop.to)
		b.row(t, ctx, "running", hop.to)
		b.heartbeats(t, 2, 20*time.Second) // and it goes on living
	}

	ms, err := b.st.MigrationsOfVnode(ctx, b.vnode)
	if err != nil || len(ms) != 2 {
		t.Fatalf("journal: %d rows, %v; want 2", len(ms), err)
	}
	hist, err := b.st.VnodeHistory(ctx, b.vnode)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, h := range hist {
		events = append(events, h.Event+"@"+h.Hypervisor)
	}
	if got := strings.Join(events, " "); got != "reconciled@hv1 migrated@hv2 migrated@hv1" {
		t.Errorf("vnode history %q", got)
	}
}

// Refused requests name the problem and change nothing: no journal row, the guest and its row stay.
func TestTestbedMigrateRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := newBed(t, ctx, "")
	ex := executor(t, b, b.conns)

	ghost := b.vnode + "-ghost" // recorded as booting, but no domain of that name exists
	if err := b.st.VnodeBooting(ctx, store.Boot{Name: ghost, CPUs: 1, MemoryMiB: 128, Hypervisor: "hv1"}); err != nil {
		t.Fatal(err)
	}
	// hv2 as a pool sees it when its libvirtd does not listen: nothing answers on port 1
	broken := append([]config.Hypervisor(nil), b.cfg.Hypervisors...)
	broken[1].URI = "qemu+tcp://198.18.0.3:1/system"
	brokenPool := migrate.NewPool(broken, 5*time.Second)
	t.Cleanup(func() { _ = brokenPool.Close() })

	for _, tc := range []struct {
		name string
		ex   *migrate.Executor
		req  migrate.Request
		want error
		msg  string
	}{
		{"unknown vnode", ex, migrate.Request{VNode: "no-such-vnode", To: "hv2"}, migrate.ErrUnknownVnode,
			`migrate no-such-vnode to hv2: unknown vnode "no-such-vnode"`},
		{"unknown destination", ex, migrate.Request{VNode: b.vnode, To: "hv9"}, migrate.ErrUnknownHypervisor,
			`unknown hypervisor "hv9" (configured: hv1, hv2)`},
		{"destination is the source", ex, migrate.Request{VNode: b.vnode, To: "hv1"}, migrate.ErrSameHypervisor,
			b.vnode + " already runs on hv1"},
		{"vnode not running", ex, migrate.Request{VNode: ghost, To: "hv2"}, migrate.ErrNotRunning,
			ghost + " runs on none of hv1, hv2"},
		{"destination unreachable", executor(t, b, brokenPool), migrate.Request{VNode: b.vnode, To: "hv2"},
			migrate.ErrUnreachable, "destination hv2: hv2: connect to qemu+tcp://198.18.0.3:1/system"},
		{"bad tuning", ex, migrate.Request{VNode: b.vnode, To: "hv2", BandwidthMiBs: ptr(-1)}, migrate.ErrBadRequest,
			"bandwidth -1 MiB/s is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.ex.Migrate(ctx, tc.req, nil)
			var me *migrate.Error
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) || !errors.As(err, &me) || me.Hint == "" {
				t.Fatalf("err = %v; want %v with %q and a hint", err, tc.want, tc.msg)
			}
			t.Logf("%v (next: %s)", err, me.Hint)
			if res.ID != 0 || me.ID != 0 || me.Phase != "" {
				t.Fatalf("refused but journaled: result %+v, error %+v", res, me)
			}
		})
	}
	for _, vn := range []string{b.vnode, ghost} {
		if ms, err := b.st.MigrationsOfVnode(ctx, vn); err != nil || len(ms) != 0 {
			t.Errorf("%s: journal rows %+v, %v; want none", vn, ms, err)
		}
	}
	b.runsOn(t, ctx, "hv1")
	b.row(t, ctx, "booting", "hv1")
	// the ghost's VM is on no hypervisor and both answered: its row stops claiming hv1's capacity
	if v, err := b.st.GetVnode(ctx, ghost); err != nil || v.State != "failed" || v.Hypervisor != "hv1" ||
		v.Reason != "its VM is on none of hv1, hv2 (the database said booting on hv1)" {
		t.Errorf("ghost row = %+v, %v; want failed, last on hv1, with the reason", v, err)
	}
	var n int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM vnode_events WHERE vnode = $1 AND event = 'vanished'`, ghost).Scan(&n); err != nil || n != 1 {
		t.Errorf("ghost's vanished events: %d, %v; want 1", n, err)
	}

	// after the refusals, a real move of a guest that is quiet on the console drover reads (a
	// file it never writes): with migration.quiet_console a 1.5 s watch passes on vCPU progress
	// alone, without the wait for a console line. The move is encrypted (migration.tls), and the
	// journal says so.
	quiet := filepath.Join(t.TempDir(), "quiet.serial")
	if err := os.WriteFile(quiet, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Migration{MaxDowntime: 50 * time.Millisecond, Timeout: 2 * time.Minute, VerifyFor: 1500 * time.Millisecond,
		QuietConsole: true, TLS: true}
	qex := migrate.New(cfg, b.st, b.conns, zerolog.New(zerolog.NewTestWriter(t)), migrate.WithOwner("test:"+t.Name()))
	start := time.Now()
	res, err := qex.Migrate(ctx, migrate.Request{VNode: b.vnode, To: "hv2", SerialLog: quiet}, nil)
	if err != nil {
		t.Fatalf("quiet guest: %v", err)
	}
	v := res.Verification
	t.Logf("quiet guest moved in %v, watched %v, CPU %v, %d console lines", time.Since(start).Round(time.Millisecond),
		v.Watched.Round(time.Millisecond), v.CPUTime, v.NewLines)
	if !v.Passed || v.SerialLog != quiet || v.NewLines != 0 || v.Watched < 1500*time.Millisecond ||
		v.Watched > 1500*time.Millisecond+5*time.Second || v.CPUTime <= 0 {
		t.Errorf("quiet guest's verification %+v; want passed after about 1.5 s with CPU time and no console line", v)
	}
	b.runsOn(t, ctx, "hv2")
	var tls, quietParam bool
	if err := b.pool.QueryRow(ctx, `SELECT (params->>'tls')::bool, (params->>'quiet_console')::bool FROM migrations WHERE id = $1`,
		res.ID).Scan(&tls, &quietParam); err != nil || !tls || !quietParam {
		t.Errorf("journal params tls %v, quiet_console %v, %v; want both true", tls, quietParam, err)
	}
}

// A second migration of a vnode that is migrating is refused; cancelling the first aborts it and
// leaves the guest running on the source, journaled as rolled back. Then a guest that dies right
// after switch-over fails verification.
func TestTestbedMigrateConcurrentAbortAndDeath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	b := newBed(t, ctx, "dirty_mb=16 dirty_rate=8")
	ex := executor(t, b, b.conns)

	firstCtx, abort := context.WithCancel(ctx)
	defer abort()
	rec := newRecorder()
	type outcome struct {
		res migrate.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		// 128 MiB at 4 MiB/s: half a minute, far from done when it is cancelled
		res, err := ex.Migrate(firstCtx, migrate.Request{VNode: b.vnode, To: "hv2", BandwidthMiBs: ptr(4)}, rec.event)
		done <- outcome{res, err}
	}()
	// Whatever happens below, the migration is aborted and over before the guest is destroyed:
	// destroying a domain whose outgoing migration is being aborted crashes libvirtd 9.0.
	// (Cleanups run last-registered first, so this one runs before newBed's.)
	var finished sync.Once
	var first outcome
	wait := func() outcome {
		finished.Do(func() {
			select {
			case first = <-done:
			case <-time.After(2 * time.Minute):
				t.Error("aborted migration did not return within 2 minutes")
			}
		})
		return first
	}
	t.Cleanup(func() { abort(); wait() })
	for phase := migrate.Phase(""); phase != migrate.PhaseTransferring; {
		select {
		case phase = <-rec.seen:
		case o := <-done:
			done <- o // for the cleanup
			t.Fatalf("first migration ended before transferring: %+v, %v", o.res, o.err)
		case <-time.After(time.Minute):
			t.Fatal("first migration not transferring after a minute")
		}
	}

	_, err := ex.Migrate(ctx, migrate.Request{VNode: b.vnode, To: "hv2"}, nil)
	// the journal may still say preparing: the transferring event comes before its journal write
	if !errors.Is(err, store.ErrMigrationActive) || !regexp.MustCompile(`migration \d+ from hv1 to hv2 is (preparing|transferring)`).MatchString(err.Error()) {
		t.Fatalf("second migration: err = %v; want ErrMigrationActive naming the first", err)
	}
	t.Logf("second migration: %v", err)

	abortedAt := time.Now()
	abort()
	o := wait()
	t.Logf("aborted migration returned %v after cancel: %v", time.Since(abortedAt).Round(time.Millisecond), o.err)
	if !errors.Is(o.err, migrate.ErrAborted) || !errors.Is(o.err, context.Canceled) || o.res.Phase != migrate.PhaseRolledBack ||
		!strings.Contains(o.err.Error(), "still runs on hv1") {
		t.Fatalf("aborted migration: %+v, %v", o.res, o.err)
	}
	m, err := b.st.GetMigration(ctx, o.res.ID)
	if err != nil || m.Phase != "rolled_back" || m.FinishedAt == nil || !strings.Contains(m.Error, "aborted") {
		t.Fatalf("journal row %+v, %v", m, err)
	}
	b.runsOn(t, ctx, "hv1")
	b.row(t, ctx, "running", "hv1")
	b.heartbeats(t, 2, 20*time.Second)

	// finished: the vnode may migrate again
	res, err := ex.Migrate(ctx, migrate.Request{VNode: b.vnode, To: "hv2", SerialLog: b.serial}, nil)
	if err != nil || res.Phase != migrate.PhaseDone {
		t.Fatalf("migration after the abort: %+v, %v", res, err)
	}
	b.runsOn(t, ctx, "hv2")

	// A guest that dies on the destination right after switch-over (as a TCG guest that panics is
	// destroyed) fails verification although libvirt reported success.
	hv1 := b.conn(t, ctx, "hv1")
	kill := func(ev migrate.Event) {
		if ev.Progress == nil && ev.Phase == migrate.PhaseVerifying {
			if err := hv1.Destroy(ctx, b.vnode); err != nil {
				t.Errorf("destroy on the destination: %v", err)
			}
		}
	}
	res, err = ex.Migrate(ctx, migrate.Request{VNode: b.vnode, To: "hv1", SerialLog: b.serial}, kill)
	t.Logf("guest killed during verification: %v", err)
	if !errors.Is(err, migrate.ErrGuestDied) || res.Phase != migrate.PhaseFailed ||
		!strings.Contains(err.Error(), "guest died after switch-over: the domain disappeared from hv1") {
		t.Fatalf("migration whose guest died: %+v, %v", res, err)
	}
	if m, err := b.st.GetMigration(ctx, res.ID); err != nil || m.Phase != "failed" || !strings.Contains(m.Error, "guest died") ||
		m.DowntimeMS == nil {
		t.Fatalf("journal row %+v, %v; want failed with the figures", m, err)
	}
	b.row(t, ctx, "failed", "")
	hist, err := b.st.VnodeHistory(ctx, b.vnode)
	if err != nil || len(hist) == 0 || hist[len(hist)-1].Event != "migration-failed" {
		t.Fatalf("vnode history %+v, %v; want it to end with migration-failed", hist, err)
	}
}

func ptr[T any](v T) *T { return &v }
