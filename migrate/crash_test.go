package migrate_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"libvirt.org/go/libvirt"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/internal/virt"
	"github.com/drover-hpc/drover/migrate"
)

// crashTrialsEnv sets how many trials TestTestbedCrashInEveryPhase runs per phase (default 1);
// DROVER_CRASH_TRIALS=5 gives the 20 trials issue #6 asks for.
const crashTrialsEnv = "DROVER_CRASH_TRIALS"

// droverBinary builds bin/drover into a temporary directory, or returns $DROVER_TEST_BIN.
func droverBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DROVER_TEST_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "drover")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/drover")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/drover: %v\n%s", err, out)
	}
	return bin
}

// cli runs drover as a child process on the bed's schema.
type cli struct {
	bin, config string
	env         []string
}

func newCLI(t *testing.T, b *bed) *cli {
	url := testenv.DatabaseConfig(t).URL
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return &cli{bin: droverBinary(t), config: testenv.ConfigPath(),
		env: append(os.Environ(), "DROVER_DATABASE_URL="+url+sep+"search_path="+b.schema)}
}

func (c *cli) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--config", c.config}, args...)...)
	cmd.Env = c.env
	return cmd
}

// run runs drover to its end and returns its exit code and output.
func (c *cli) run(ctx context.Context, args ...string) (int, string, string, error) {
	cmd := c.command(ctx, args...)
	var out, errs strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errs
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String(), errs.String(), nil
	}
	return 0, out.String(), errs.String(), err
}

// kill9 starts `drover migrate` and SIGKILLs it delay after its progress shows phase. It returns
// the journal's phase at the kill ("" if the process ended first, with its output).
func (c *cli) kill9(t *testing.T, ctx context.Context, st *store.Store, vnode, to string, phase migrate.Phase,
	delay time.Duration, extra ...string) (migrate.Phase, int64, string) {
	t.Helper()
	cmd := c.command(ctx, append([]string{"migrate", vnode, "--to", to}, extra...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen strings.Builder
	var mu sync.Mutex
	hit := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		want := ": " + strings.ReplaceAll(string(phase), "_", " ") + " "
		once := false
		for sc.Scan() {
			mu.Lock()
			seen.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if !once && strings.Contains(sc.Text(), want) {
				once = true
				close(hit)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-hit:
		if delay > 0 {
			time.Sleep(delay)
		}
		_ = cmd.Process.Kill() // SIGKILL: no deferred cleanup, no journal write
		<-exited
	case err := <-exited:
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("drover migrate ended (%v) before showing %s:\n%s", err, phase, seen.String())
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("drover migrate did not reach %s within 3 minutes", phase)
	}
	m, _, err := st.UnfinishedMigration(ctx, vnode)
	if errors.Is(err, store.ErrNotFound) {
		mu.Lock()
		defer mu.Unlock()
		return "", 0, seen.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return migrate.Phase(m.Phase), m.ID, ""
}

// where returns the hypervisors on which the guest's domain exists, with its state.
func (b *bed) where(t *testing.T, ctx context.Context) map[string]virt.Domain {
	t.Helper()
	return testenv.Copies(t, ctx, b.conns.Conn, b.cfg.Hypervisors, b.vnode)
}

// A drover migrate process killed with SIGKILL in each phase of the journal leaves a migration
// that drover reconcile settles: afterwards the guest exists exactly once and runs, the vnodes row
// points at it, the journal row is finished with the finding, and the next migration works.
func TestTestbedCrashInEveryPhase(t *testing.T) {
	trials := 1
	if s := os.Getenv(crashTrialsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number of trials per phase", crashTrialsEnv, s)
		}
		trials = n
	}
	phases := []struct {
		phase migrate.Phase
		delay time.Duration // after the phase shows, before the kill
		extra []string      // migrate flags: a slow copy keeps transferring long enough
	}{
		{migrate.PhasePreparing, 0, nil},
		{migrate.PhaseTransferring, 700 * time.Millisecond, []string{"--bandwidth", "8"}},
		{migrate.PhaseSwitchingOver, 0, nil},
		{migrate.PhaseVerifying, time.Second, []string{"--verify-for", "3s"}}, // the default quick check is over in ms
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(trials*len(phases))*2*time.Minute+3*time.Minute)
	defer cancel()
	b := newNamedBed(t, ctx, "crash", "dirty_mb=16 dirty_rate=8")
	c := newCLI(t, b)
	settleAtEnd(t, b)
	at := "hv1"
	other := map[string]string{"hv1": "hv2", "hv2": "hv1"}

	type figure struct {
		aimed, killed migrate.Phase
		outcome       migrate.Phase
		runsOn        string
		reconcile     time.Duration
		did           string
	}
	var figures []figure
	defer func() {
		var maxRec time.Duration
		for i, f := range figures {
			t.Logf("trial %2d: aimed at %-14s killed in %-14s → %-11s runs on %s, reconcile took %v; %s", i+1, f.aimed,
				f.killed, f.outcome, f.runsOn, f.reconcile.Round(time.Millisecond), f.did)
			maxRec = max(maxRec, f.reconcile)
		}
		t.Logf("%d trials, slowest reconciliation %v (issue #6 asks for under 10 s)", len(figures), maxRec.Round(time.Millisecond))
	}()

	for trial := 0; trial < trials; trial++ {
		for _, p := range phases {
			to := other[at]
			killed, id, out := c.kill9(t, ctx, b.st, b.vnode, to, p.phase, p.delay, p.extra...)
			if killed == "" {
				t.Fatalf("aimed at %s: the journal was finished when the process was killed; its output:\n%s", p.phase, out)
			}
			// restart: drover reconcile, retried while PostgreSQL has not yet noticed the dead
			// process (its lock is held until the backend sees the closed connection)
			start := time.Now()
			var code int
			var stdout, stderr string
			for {
				var err error
				code, stdout, stderr, err = c.run(ctx, "reconcile")
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(stdout, "in progress (owner") || time.Since(start) > 30*time.Second {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			took := time.Since(start)
			if code != 0 || !hasRow(stdout, strconv.FormatInt(id, 10), b.vnode) {
				t.Fatalf("aimed at %s, killed in %s: drover reconcile exit %d\nstdout:\n%s\nstderr:\n%s", p.phase, killed, code, stdout, stderr)
			}
			m, err := b.st.GetMigration(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			// exactly one copy, running, where the journal and the vnodes row say
			copies := b.where(t, ctx)
			want := map[string]string{"done": to, "rolled_back": at}[m.Phase]
			if len(copies) != 1 || want == "" || !copies[want].Running() {
				t.Fatalf("aimed at %s, killed in %s: journal %s, copies %+v\n%s", p.phase, killed, m.Phase, copies, stdout)
			}
			b.row(t, ctx, "running", want)
			if m.FinishedAt == nil || !strings.Contains(m.Error, "reconciled after its owner") {
				t.Fatalf("journal row %+v: want finished with the finding", m)
			}
			evs, err := b.st.MigrationEvents(ctx, id)
			if err != nil || len(evs) == 0 || evs[len(evs)-1].Detail["by"] != "reconcile" || evs[len(evs)-1].Phase != m.Phase {
				t.Fatalf("journal events %+v, %v: want the finding last", evs, err)
			}
			figures = append(figures, figure{aimed: p.phase, killed: killed, outcome: migrate.Phase(m.Phase), runsOn: want,
				reconcile: took, did: found(evs[len(evs)-1].Detail)})
			at = want
			b.heartbeats(t, 2, 30*time.Second) // the guest lives on

			// reconciling again changes nothing
			if code, stdout, _, _ := c.run(ctx, "reconcile"); code != 0 || !strings.Contains(stdout, "no unfinished migrations") {
				t.Fatalf("second drover reconcile: exit %d\n%s", code, stdout)
			}
			// and the next migration works
			code, stdout, stderr, err = c.run(ctx, "migrate", b.vnode, "--to", other[at])
			if err != nil || code != 0 {
				t.Fatalf("migration after the crash: exit %d, %v\n%s\n%s", code, err, stdout, stderr)
			}
			at = other[at]
			b.runsOn(t, ctx, at)
			b.row(t, ctx, "running", at)
		}
	}
}

// Two processes at once obey migration.max_per_hypervisor: the second is refused naming the limit
// and the migration that holds it; and a migrate started after its predecessor was killed
// reconciles it first.
func TestTestbedLimitsAcrossProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b := newNamedBed(t, ctx, "limits", "dirty_mb=16 dirty_rate=8")
	c := newCLI(t, b)
	settleAtEnd(t, b)
	// a second guest on hv1, to leave it while the first one does
	ghost := b.vnode + "-b"
	b.boot(t, ctx, ghost, "", filepath.Join(t.TempDir(), ghost+".serial"))

	// process 1: a slow migration, killed while it copies
	killed, id, _ := c.kill9(t, ctx, b.st, b.vnode, "hv2", migrate.PhaseTransferring, 500*time.Millisecond, "--bandwidth", "4")
	if killed == "" {
		t.Fatal("the first migration finished before it was killed")
	}
	// process 2 migrates the same vnode, once PostgreSQL has dropped the dead process's lock
	b.waitUnlocked(t, ctx)
	// slow, but converging: the guest dirties 8 MiB/s of 16 MiB, a 3 s pause covers what is left
	cmd := c.command(ctx, "migrate", b.vnode, "--to", "hv2", "--bandwidth", "10", "--max-downtime", "3s")
	var out2, err2 strings.Builder
	cmd.Stdout, cmd.Stderr = &out2, &err2
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var second *store.Unfinished
	for deadline := time.Now().Add(time.Minute); second == nil; time.Sleep(50 * time.Millisecond) {
		m, owner, err := b.st.UnfinishedMigration(ctx, b.vnode)
		if err == nil && m.ID != id && (m.Phase == "preparing" || m.Phase == "transferring") {
			second = &store.Unfinished{Migration: m, Owner: owner}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("the second process did not start migrating within a minute:\n%s\n%s", out2.String(), err2.String())
		}
	}
	// process 2 reconciled process 1's row before it started
	if m, err := b.st.GetMigration(ctx, id); err != nil || m.Phase != "rolled_back" || !strings.Contains(m.Error, "reconciled after its owner") {
		t.Errorf("first migration's row %+v, %v: want rolled back by the second process's reconciliation", m, err)
	}
	// process 3: another vnode leaving hv1 while process 2 migrates from it
	code, stdout, stderr, err := c.run(ctx, "migrate", ghost, "--to", "hv2")
	t.Logf("third process: exit %d: %s", code, stderr)
	wantMsg := fmt.Sprintf("migration.max_per_hypervisor is 1 and hv1 already takes part in 1: migration %d of %s (hv1 → hv2, ",
		second.ID, b.vnode)
	if err != nil || code != 1 || stdout != "" || !strings.Contains(stderr, wantMsg) || !strings.Contains(stderr, "next: wait for those migrations") {
		t.Errorf("third process: exit %d, %v, stdout %q; stderr lacks %q:\n%s", code, err, stdout, wantMsg, stderr)
	}
	if ms, err := b.st.MigrationsOfVnode(ctx, ghost); err != nil || len(ms) != 0 {
		t.Errorf("refused migration journaled: %+v, %v", ms, err)
	}
	// the same limits in-process
	ex := migrate.New(config.Migration{MaxPerHypervisor: 1, MaxConcurrent: 2, Timeout: time.Minute}, b.st, b.conns,
		zerolog.New(zerolog.NewTestWriter(t)))
	_, err = ex.Migrate(ctx, migrate.Request{VNode: ghost, To: "hv2"}, nil)
	var le *migrate.LimitError
	if !errors.Is(err, migrate.ErrLimit) || !errors.As(err, &le) || le.Host != "hv1" || len(le.Holders) != 1 || le.Holders[0].ID != second.ID {
		t.Errorf("in-process: err = %v; want the per-hypervisor limit held by migration %d", err, second.ID)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("second process: %v\n%s\n%s", err, out2.String(), err2.String())
	}
	if !strings.Contains(err2.String(), fmt.Sprintf("reconciled migration %d of %s", id, b.vnode)) {
		t.Errorf("second process did not report the reconciliation:\n%s", err2.String())
	}
	b.runsOn(t, ctx, "hv2")
	b.row(t, ctx, "running", "hv2")
}

// settleAtEnd reconciles whatever a failed test left unfinished before the guests are destroyed:
// it waits for (or aborts) libvirt jobs first, as destroying a domain whose outgoing migration is
// being aborted crashes libvirtd 9.0. (Cleanups run last-registered first.)
func settleAtEnd(t *testing.T, b *bed) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ex := migrate.New(config.Migration{}, b.st, b.conns, zerolog.New(zerolog.NewTestWriter(t)), migrate.WithOwner("cleanup"))
		if fs, err := ex.Reconcile(ctx); err != nil || len(fs) > 0 {
			t.Logf("cleanup reconciled %+v, %v", fs, err)
		}
	})
}

// waitUnlocked waits until no process holds the vnode's lock (PostgreSQL frees a killed process's
// lock once its backend sees the closed connection).
func (b *bed) waitUnlocked(t *testing.T, ctx context.Context) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l, got, err := b.st.TryLockVnode(ctx, b.vnode)
		if err != nil {
			t.Fatal(err)
		}
		if got {
			l.Release()
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the vnode's lock is still held 30 s after its process was killed")
		}
	}
}

// hasRow reports whether a table printed by drover has a row starting with fields.
func hasRow(table string, fields ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(fields) && strings.Join(f[:len(fields)], " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}

// found summarises a reconciliation's journal event: what each side held and what was done.
func found(d map[string]any) string {
	did := "nothing done"
	if l, ok := d["did"].([]any); ok && len(l) > 0 {
		did = fmt.Sprint(l...)
	}
	return fmt.Sprintf("found source %v, destination %v; %s", d["source"], d["destination"], did)
}

// Reconcile against real libvirt in states a kill rarely leaves: the guest paused on the source
// (killed between the end of the copy and the handover) with a shut-off definition left on the
// destination. The leftover is undefined, the guest resumed on the source, the journal rolled back.
// Then both copies paused (killed at switch-over): the destination's is destroyed.
func TestTestbedReconcilePausedSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := newNamedBed(t, ctx, "recpause", "")
	settleAtEnd(t, b)
	lv, err := libvirt.NewConnect(testenv.Hypervisor(t, "hv1").URI)
	if err != nil {
		t.Fatal(err)
	}
	defer lv.Close()
	dom, err := lv.LookupDomainByName(b.vnode)
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	if err := dom.Suspend(); err != nil {
		t.Fatal(err)
	}
	xml, err := virt.DomainSpec{Name: b.vnode, MemoryMiB: 128, VCPUs: 1, Type: virt.DomainType(b.cfg.Libvirt.DomainType),
		Kernel: "/nonexistent/vmlinuz"}.XML()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.conn(t, ctx, "hv2").Define(ctx, xml); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = b.conn(t, context.Background(), "hv2").Undefine(context.Background(), b.vnode) })
	id, err := b.st.InsertMigration(ctx, store.NewMigration{VNode: b.vnode, Src: "hv1", Dst: "hv2", Reason: "manual", Owner: "gone:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.st.SetMigrationPhase(ctx, id, "transferring", "", nil); err != nil {
		t.Fatal(err)
	}
	ex := executor(t, b, b.conns)
	fs, err := ex.Reconcile(ctx)
	if err != nil || len(fs) != 1 {
		t.Fatalf("Reconcile = %+v, %v; want one finding", fs, err)
	}
	f := fs[0]
	t.Logf("finding: %+v", f)
	if f.ID != id || f.Outcome != migrate.PhaseRolledBack || f.RunsOn != "hv1" || f.NeedsOperator ||
		!strings.HasPrefix(f.Source, "paused") || f.Destination != "defined, shut off" ||
		strings.Join(f.Did, ", ") != "undefined on hv2, resumed on hv1" {
		t.Fatalf("finding %+v", f)
	}
	b.runsOn(t, ctx, "hv1")
	b.row(t, ctx, "running", "hv1")
	b.heartbeats(t, 2, 30*time.Second)
	if fs, err := ex.Reconcile(ctx); err != nil || len(fs) != 0 {
		t.Errorf("second Reconcile = %+v, %v; want nothing to do", fs, err)
	}

	// both paused, as if killed at switch-over: a second copy paused on hv2 is destroyed (it never
	// ran), the source resumed
	img := filepath.Join(b.cfg.Testbed.Dir, "guest", "out")
	xml, err = virt.DomainSpec{Name: b.vnode, MemoryMiB: 128, VCPUs: 1, Type: virt.DomainType(b.cfg.Libvirt.DomainType),
		Kernel: filepath.Join(img, "vmlinuz"), Initrd: filepath.Join(img, "initramfs.cpio.gz"),
		Cmdline: "console=ttyS0 quiet panic=-1", SerialLog: filepath.Join(t.TempDir(), "copy.serial")}.XML()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.conn(t, ctx, "hv2").Create(ctx, xml); err != nil {
		t.Fatalf("%v", err)
	}
	lv2, err := libvirt.NewConnect(testenv.Hypervisor(t, "hv2").URI)
	if err != nil {
		t.Fatal(err)
	}
	defer lv2.Close()
	dom2, err := lv2.LookupDomainByName(b.vnode)
	if err != nil {
		t.Fatal(err)
	}
	defer dom2.Free()
	for _, d := range []*libvirt.Domain{dom, dom2} {
		if err := d.Suspend(); err != nil {
			t.Fatal(err)
		}
	}
	id, err = b.st.InsertMigration(ctx, store.NewMigration{VNode: b.vnode, Src: "hv1", Dst: "hv2", Reason: "manual", Owner: "gone:2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.st.SetMigrationPhase(ctx, id, "switching_over", "", nil); err != nil {
		t.Fatal(err)
	}
	fs, err = ex.Reconcile(ctx)
	if err != nil || len(fs) != 1 {
		t.Fatalf("Reconcile = %+v, %v; want one finding", fs, err)
	}
	f = fs[0]
	t.Logf("finding: %+v", f)
	if f.ID != id || f.Outcome != migrate.PhaseRolledBack || f.RunsOn != "hv1" || !strings.HasPrefix(f.Destination, "paused") ||
		strings.Join(f.Did, ", ") != "destroyed on hv2, resumed on hv1" {
		t.Fatalf("finding %+v", f)
	}
	b.runsOn(t, ctx, "hv1")
	b.heartbeats(t, 2, 30*time.Second)
}
