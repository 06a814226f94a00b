package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/internal/virt"
	"github.com/drover-hpc/drover/migrate"
)

func TestMigrateDisplay(t *testing.T) {
	p := virt.Progress{Elapsed: 750 * time.Millisecond, DataTotal: 128 << 20, DataProcessed: 64 << 20,
		DataRemaining: 60 << 20, BytesPerSec: 95 << 20, Iteration: 1}
	ev := migrate.Event{ID: 12, VNode: "vn1", From: "hv1", To: "hv2", Phase: migrate.PhaseTransferring, Since: 1020 * time.Millisecond}
	if got, want := phaseLine(ev), "vn1: transferring hv1 → hv2 (migration 12, 1.02s)"; got != want {
		t.Errorf("phaseLine = %q, want %q", got, want)
	}
	ev.Progress = &p
	if got, want := progressLine(ev), "vn1: 64.0 MiB of 128.0 MiB sent, 60.0 MiB left, 95.0 MiB/s, iteration 1, elapsed 0.75s"; got != want {
		t.Errorf("progressLine = %q, want %q", got, want)
	}
	waiting := ev
	waiting.Progress = &virt.Progress{Elapsed: 250 * time.Millisecond}
	if got, want := progressLine(waiting), "vn1: waiting for hv2 to receive, elapsed 0.25s"; got != want {
		t.Errorf("progressLine before any data = %q, want %q", got, want)
	}
	phase := ev
	phase.Progress, phase.Phase = nil, migrate.PhaseSwitchingOver

	// on a terminal, progress rewrites one line; the next phase starts on a fresh one
	var term bytes.Buffer
	d := &display{w: &term, terminal: true, watch: true}
	d.event(ev)
	d.event(ev)
	d.event(phase)
	d.close()
	want := "\r" + progressLine(ev) + "\x1b[K\r" + progressLine(ev) + "\x1b[K\n" + phaseLine(phase) + "\n"
	if term.String() != want {
		t.Errorf("terminal output %q,\nwant %q", term.String(), want)
	}
	// piped and watching: a line per update; not watching: phases only
	var piped, quiet bytes.Buffer
	for _, d := range []*display{{w: &piped, watch: true}, {w: &quiet}} {
		d.event(ev)
		d.event(phase)
		d.close()
	}
	if want := progressLine(ev) + "\n" + phaseLine(phase) + "\n"; piped.String() != want {
		t.Errorf("piped output %q, want %q", piped.String(), want)
	}
	if want := phaseLine(phase) + "\n"; quiet.String() != want {
		t.Errorf("quiet output %q, want %q", quiet.String(), want)
	}
}

func TestMigrateSummaryAndFailure(t *testing.T) {
	res := migrate.Result{ID: 7, VNode: "vn1", From: "hv1", To: "hv2", Phase: migrate.PhaseDone,
		Wall: 4988 * time.Millisecond, FirstByte: 1025 * time.Millisecond,
		Libvirt: virt.MigrateResult{Elapsed: 1133 * time.Millisecond, Downtime: 25 * time.Millisecond,
			DataTotal: 128 << 20, DataProcessed: 96 << 20, Iterations: 3},
		Verification: migrate.Verification{Passed: true, Watched: 2583 * time.Millisecond, CPUTime: 200 * time.Millisecond,
			SerialLog: "/x/vn1.log", NewLines: 3},
		Corrected: "booting on hv2",
	}
	var out bytes.Buffer
	if err := summary(&out, res, "/x/vn1.log"); err != nil {
		t.Fatal(err)
	}
	want := `migrated vn1 from hv1 to hv2
  wall time     4.99s (first byte sent after 1.02s)
  QEMU time     1.13s
  downtime      25ms
  data sent     96.0 MiB of 128.0 MiB
  iterations    3
  verification  passed: running 2.58s on hv2, 200ms CPU, 3 new console lines
  journal id    7
  corrected     the database said booting on hv2; it ran on hv1
`
	if out.String() != want {
		t.Errorf("summary:\n%s\nwant:\n%s", out.String(), want)
	}

	err := failure(&migrate.Error{VNode: "vn1", To: "hv2", ID: 7, Phase: migrate.PhaseRolledBack,
		Err: fmt.Errorf("%w: context canceled", migrate.ErrAborted), Hint: "vn1 still runs on hv1"})
	if want := "migrate vn1 to hv2: migration aborted: context canceled\n  journal: migration 7, phase rolled_back\n  next: vn1 still runs on hv1"; err.Error() != want {
		t.Errorf("failure = %q, want %q", err, want)
	}
	if err := failure(errors.New("database down")); err.Error() != "database down" {
		t.Errorf("failure of a plain error = %q", err)
	}
}

// migrateEnv points drover at the testbed with a schema of its own and returns the config file
// and a store on that schema.
func migrateEnv(t *testing.T) (string, *store.Store) {
	t.Helper()
	schema, pool := testenv.MigratedSchema(t)
	useSchema(t, schema)
	return testbedConfig(t), store.New(pool)
}

// Refused requests exit 1 with the problem, that nothing changed and what to do next.
func TestMigrateCommandRefusals(t *testing.T) {
	cfg, _ := migrateEnv(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"migrate", "vn1"}, []string{`required flag(s) "to" not set`}},
		{[]string{"migrate", "--to", "hv2"}, []string{"accepts 1 arg(s), received 0"}},
		{[]string{"migrate", "no-such-vnode", "--to", "hv2"},
			[]string{`drover: migrate no-such-vnode to hv2: unknown vnode "no-such-vnode"`, "nothing was changed", "next: "}},
		{[]string{"migrate", "vn1", "--to", "hv9"},
			[]string{`unknown hypervisor "hv9" (configured: hv1, hv2)`, "next: choose one of the configured hypervisors: hv1, hv2"}},
		{[]string{"migrate", "vn1", "--to", "hv2", "--bandwidth", "-3"},
			[]string{"invalid migration request: bandwidth -3 MiB/s is negative"}},
	} {
		code, out, errs := run(t, append([]string{"--config", cfg}, tc.args...)...)
		if code != 1 || out != "" {
			t.Errorf("drover %v: exit %d, stdout %q; want 1 and nothing", tc.args, code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(errs, w) {
				t.Errorf("drover %v: stderr lacks %q:\n%s", tc.args, w, errs)
			}
		}
	}
}

// A real migration through the command line: progress on stderr, the summary on stdout.
func TestMigrateCommandTestbed(t *testing.T) {
	cfgPath, st := migrateEnv(t)
	cfg := testenv.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := st.SyncHypervisors(ctx, cfg.Hypervisors); err != nil {
		t.Fatal(err)
	}
	conns := migrate.NewPool(cfg.Hypervisors, cfg.Libvirt.ConnectTimeout)
	t.Cleanup(func() { _ = conns.Close() })
	hv1, err := conns.Conn(ctx, "hv1")
	if err != nil {
		t.Fatalf("%v", err)
	}
	name := fmt.Sprintf("cli-mig-%d-%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	serial := filepath.Join(t.TempDir(), name+".serial")
	img := filepath.Join(cfg.Testbed.Dir, "guest", "out")
	xml, err := virt.DomainSpec{Name: name, MemoryMiB: 128, VCPUs: 1, Type: virt.DomainType(cfg.Libvirt.DomainType),
		Kernel: filepath.Join(img, "vmlinuz"), Initrd: filepath.Join(img, "initramfs.cpio.gz"),
		Cmdline: "console=ttyS0 quiet panic=-1 dirty_mb=8 dirty_rate=4", SerialLog: serial}.XML()
	if err != nil {
		t.Fatal(err)
	}
	d, err := hv1.Create(ctx, xml)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, h := range cfg.Hypervisors {
			if c, err := conns.Conn(ctx, h.Name); err == nil {
				if err := c.Destroy(ctx, name); err != nil && !errors.Is(err, virt.ErrNoDomain) && !errors.Is(err, virt.ErrWrongState) {
					t.Errorf("cleanup on %s: %v", h.Name, err)
				}
			}
		}
	})
	if err := st.VnodeBooting(ctx, store.Boot{Name: name, CPUs: 1, MemoryMiB: 128, Hypervisor: "hv1", DomainUUID: d.UUID}); err != nil {
		t.Fatal(err)
	}
	// the guest is up once its console shows heartbeats
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if b, _ := os.ReadFile(serial); strings.Count(string(b), "\nHB ") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("guest did not boot within 90 s")
		}
	}

	code, out, errs := run(t, "--config", cfgPath, "migrate", name, "--to", "hv2", "--watch", "--max-downtime", "100ms")
	t.Logf("stdout:\n%s\nstderr:\n%s", out, errs)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, w := range []string{"migrated " + name + " from hv1 to hv2\n", "  downtime ", "  data sent ", "  journal id ",
		"  verification  passed: running", "console not checked (no console log known"} {
		if !strings.Contains(out, w) {
			t.Errorf("stdout lacks %q", w)
		}
	}
	for _, w := range []string{": preparing hv1 → hv2", ": transferring hv1 → hv2", " MiB sent, ", ": done hv1 → hv2"} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr lacks %q", w)
		}
	}
	if strings.Contains(errs, "\r") {
		t.Error("progress rewritten in place although stderr is not a terminal")
	}
	if v, err := st.GetVnode(ctx, name); err != nil || v.State != "running" || v.Hypervisor != "hv2" {
		t.Errorf("vnode row %+v, %v; want running on hv2", v, err)
	}
}

func TestPrintFindings(t *testing.T) {
	var b bytes.Buffer
	if err := printFindings(&b, nil); err != nil || b.String() != "no unfinished migrations: the journal is consistent\n" {
		t.Errorf("no findings: %q, %v", b.String(), err)
	}
	b.Reset()
	fs := []migrate.Finding{
		{ID: 11, VNode: "vn1", From: "hv1", To: "hv2", Phase: migrate.PhaseTransferring, Owner: "n1:42", Source: "running",
			Destination: "paused (by migration)", Did: []string{"destroyed on hv2"}, Outcome: migrate.PhaseRolledBack,
			RunsOn: "hv1", Took: 1500 * time.Millisecond},
		{ID: 12, VNode: "vn2", From: "hv2", To: "hv1", Phase: migrate.PhasePreparing, Owner: "n2:7", Busy: true},
		{ID: 13, VNode: "vn3", From: "hv1", To: "hv2", Phase: migrate.PhaseVerifying, Source: "absent", Destination: "absent",
			Outcome: migrate.PhaseFailed, NeedsOperator: true, Note: "the guest exists on neither hypervisor: it is lost",
			Hint: "restart the vnode", Took: 20 * time.Millisecond},
	}
	if err := printFindings(&b, fs); err != nil {
		t.Fatal(err)
	}
	want := `ID  VNODE  FROM  TO   FOUND IN      SOURCE   DESTINATION            DONE              OUTCOME                   RUNS ON  TOOK
11  vn1    hv1   hv2  transferring  running  paused (by migration)  destroyed on hv2  rolled_back               hv1      1.50s
12  vn2    hv2   hv1  preparing     -        -                      -                 in progress (owner n2:7)  -        -
13  vn3    hv1   hv2  verifying     absent   absent                 -                 failed                    -        0.02s
migration 13 of vn3: the guest exists on neither hypervisor: it is lost
  next: restart the vnode
`
	if b.String() != want {
		t.Errorf("findings:\n%s\nwant:\n%s", b.String(), want)
	}
	if n := needOperator(fs); n != 1 {
		t.Errorf("needOperator = %d, want 1", n)
	}
	if got, want := reconciledLine(fs[0]), "reconciled migration 11 of vn1 (hv1 → hv2, owner n1:42 died in transferring): "+
		"rolled_back, runs on hv1 (destroyed on hv2)"; got != want {
		t.Errorf("reconciledLine = %q, want %q", got, want)
	}
}

// drover reconcile on journal rows whose owner died and whose vnode runs nowhere: the one it can
// settle (lost: marked failed) is finished once; the one behind an unreachable hypervisor is left
// for an operator and journaled once however often reconcile runs. Exit 1 both times, with what to do.
func TestReconcileCommand(t *testing.T) {
	_, st := migrateEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := testenv.Config(t)
	if err := st.SyncHypervisors(ctx, cfg.Hypervisors); err != nil {
		t.Fatal(err)
	}
	good := testbedConfig(t)
	if code, out, errs := run(t, "--config", good, "reconcile"); code != 0 || out != "no unfinished migrations: the journal is consistent\n" {
		t.Fatalf("empty journal: exit %d\n%s\n%s", code, out, errs)
	}
	prefix := fmt.Sprintf("cli-rec-%d", os.Getpid())
	lost, err := st.InsertMigration(ctx, store.NewMigration{VNode: prefix + "-lost", Src: "hv1", Dst: "hv2", Reason: "manual", Owner: "gone:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetMigrationPhase(ctx, lost, "transferring", "", nil); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "--config", good, "reconcile")
	t.Logf("stdout:\n%s", out)
	if code != 1 || !hasFields(out, fmt.Sprint(lost), prefix+"-lost", "hv1", "hv2", "transferring", "absent", "absent", "-", "failed") ||
		!strings.Contains(out, "it is lost\n  next: restart the vnode") || !strings.Contains(errs, "1 migration(s) need an operator") {
		t.Errorf("lost vnode: exit %d\n%s\n%s", code, out, errs)
	}
	if m, err := st.GetMigration(ctx, lost); err != nil || m.Phase != "failed" || !strings.Contains(m.Error, "reconciled after its owner gone:1 stopped in phase transferring") {
		t.Errorf("journal row %+v, %v", m, err)
	}
	if v, err := st.GetVnode(ctx, prefix+"-lost"); err != nil || v.State != "failed" || v.Hypervisor != "" {
		t.Errorf("vnode row %+v, %v; want failed, nowhere", v, err)
	}

	// hv2 does not answer: nothing can be ruled out, the row stays unfinished
	broken := testbedConfig(t, "198.18.0.3:16514/system", "198.18.0.3:1/system")
	stuck, err := st.InsertMigration(ctx, store.NewMigration{VNode: prefix + "-stuck", Src: "hv1", Dst: "hv2", Reason: "manual", Owner: "gone:2"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		code, out, errs := run(t, "--config", broken, "reconcile")
		if code != 1 || !hasFields(out, fmt.Sprint(stuck), prefix+"-stuck") || !strings.Contains(out, "left: needs an operator") ||
			!strings.Contains(out, "next: bring libvirtd back") {
			t.Errorf("run %d with hv2 unreachable: exit %d\n%s\n%s", i+1, code, out, errs)
		}
	}
	evs, err := st.MigrationEvents(ctx, stuck)
	if err != nil || len(evs) != 1 || evs[0].Phase != "planned" || evs[0].Detail["needs_operator"] != true {
		t.Errorf("events of the stuck migration %+v, %v; want the finding once", evs, err)
	}
}

// hasFields reports whether a table has a row whose fields start with fields.
func hasFields(table string, fields ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(fields) && strings.Join(f[:len(fields)], " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}
