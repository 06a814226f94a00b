//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/hostlist"
	"github.com/drover-hpc/drover/internal/slurm"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/internal/virt"
	"github.com/drover-hpc/drover/migrate"
)

// report gathers the figures of TestPFT's parts; TestPFT writes them as one JSON object.
type report struct {
	mu  sync.Mutex
	res map[string]any
}

func (r *report) set(key string, v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res[key] = v
}

// guest is a heartbeat test guest (scripts/guest) recorded as a vnode in a schema of its own, so
// drover's CLI can migrate it while drover server, working on the testbed's own schema, never
// sees it.
type guest struct {
	cfg    *config.Config
	name   string
	schema string
	st     *store.Store
	conns  *migrate.Pool
	serial string
	dbURL  string // the private schema's URL for drover's CLI
}

// bootGuest starts a guest of memMiB on hv with the heartbeat's kernel parameters in cmdline and
// destroys it wherever it is when the test ends.
func bootGuest(t *testing.T, ctx context.Context, prefix, hv string, memMiB int, cmdline string) *guest {
	t.Helper()
	cfg := testenv.Config(t)
	schema, pool := testenv.MigratedSchema(t)
	g := &guest{cfg: cfg, schema: schema, st: store.New(pool), conns: migrate.NewPool(cfg.Hypervisors, cfg.Libvirt.ConnectTimeout)}
	t.Cleanup(func() { _ = g.conns.Close() })
	if err := g.st.SyncHypervisors(ctx, cfg.Hypervisors); err != nil {
		t.Fatal(err)
	}
	url := testenv.DatabaseConfig(t).URL
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	g.dbURL = url + sep + "search_path=" + schema
	g.name = fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1_000_000)
	g.serial = filepath.Join(t.TempDir(), g.name+".serial")
	img := filepath.Join(cfg.Testbed.Dir, "guest", "out")
	xml, err := virt.DomainSpec{Name: g.name, MemoryMiB: memMiB, VCPUs: 1, Type: virt.DomainType(cfg.Libvirt.DomainType),
		Kernel: filepath.Join(img, "vmlinuz"), Initrd: filepath.Join(img, "initramfs.cpio.gz"),
		Cmdline: "console=ttyS0 panic=-1 " + cmdline, SerialLog: g.serial}.XML() // not quiet: kernel trouble shows on the console
	if err != nil {
		t.Fatal(err)
	}
	d, err := g.conn(t, ctx, hv).Create(ctx, xml)
	if err != nil {
		t.Fatalf("start test guest on %s: %v (is the guest image built? scripts/testbed status)", hv, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, h := range cfg.Hypervisors {
			c, err := g.conns.Conn(ctx, h.Name)
			if err != nil {
				t.Errorf("cleanup: %v", err)
				continue
			}
			if err := c.Destroy(ctx, g.name); err != nil && !errors.Is(err, virt.ErrNoDomain) && !errors.Is(err, virt.ErrWrongState) {
				t.Errorf("cleanup on %s: %v", h.Name, err)
			}
		}
	})
	if err := g.st.VnodeBooting(ctx, store.Boot{Name: g.name, CPUs: 1, MemoryMiB: int64(memMiB), Hypervisor: hv, DomainUUID: d.UUID}); err != nil {
		t.Fatal(err)
	}
	if err := g.st.SetVnodeState(ctx, g.name, "running", "", &hv); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *guest) conn(t *testing.T, ctx context.Context, hv string) *virt.Conn {
	t.Helper()
	c, err := g.conns.Conn(ctx, hv)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// heartbeats waits until the console shows a heartbeat line numbered at least n.
func (g *guest) heartbeats(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(250 * time.Millisecond) {
		data, _ := os.ReadFile(g.serial)
		if lastHeartbeat(data) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: heartbeat %d not seen within %v; console ends:\n%s", g.name, n, timeout, tailOf(data, 1500))
		}
	}
}

// alive waits up to 15 s for the guest to write a new heartbeat after migration m. It returns ""
// when it did, else what was seen, and whether the console shows the guest's kernel crashed.
func (g *guest) alive(t *testing.T, m pftMigration) (problem string, crashed bool) {
	t.Helper()
	data, _ := os.ReadFile(g.serial)
	n, size := lastHeartbeat(data), len(data)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		data, _ = os.ReadFile(g.serial)
		if lastHeartbeat(data) > n {
			return "", false
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("%s wrote no heartbeat in the 15 s after %s moved it %s→%s (downtime %.0f ms); %s; console ends:\n%s",
				g.name, m.Tool, m.From, m.To, m.DowntimeMS, g.cpuNote(t, m.To), tailOf(data, 600)), oopsRE.Match(data[min(size, len(data)):])
		}
	}
}

// oopsRE matches what a guest kernel prints when it crashes.
var oopsRE = regexp.MustCompile(`(?m)Oops|BUG: |general protection fault|Kernel panic|exited with irqs disabled|^\s*\[[ 0-9.]+\] RIP: `)

// cpuNote says whether the silent guest's vCPUs still run on hv: a hung guest spins or idles, a
// lost console keeps counting.
func (g *guest) cpuNote(t *testing.T, hv string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := g.conn(t, ctx, hv)
	a, err := c.DomainStats(ctx, g.name)
	if err != nil || len(a) == 0 {
		return fmt.Sprintf("no stats on %s: %v", hv, err)
	}
	time.Sleep(time.Second)
	b, err := c.DomainStats(ctx, g.name)
	if err != nil || len(b) == 0 {
		return fmt.Sprintf("no stats on %s: %v", hv, err)
	}
	return fmt.Sprintf("on %s it is %s and used %v of CPU in the last second", hv, b[0].State, (b[0].CPUTime - a[0].CPUTime).Round(time.Millisecond))
}

var hbRE = regexp.MustCompile(`(?m)^HB (\d+) `)

// lastHeartbeat is the number of the console's last heartbeat line, 0 if none.
func lastHeartbeat(console []byte) int {
	m := hbRE.FindAllSubmatch(console, -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(string(m[len(m)-1][1]))
	return n
}

func tailOf(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// copies lists the hypervisors on which the guest's domain exists.
func (g *guest) copies(t *testing.T, ctx context.Context) map[string]virt.Domain {
	t.Helper()
	return testenv.Copies(t, ctx, g.conns.Conn, g.cfg.Hypervisors, g.name)
}

// runsOn fails unless the guest runs on hv and nowhere else.
func (g *guest) runsOn(t *testing.T, ctx context.Context, hv string) {
	t.Helper()
	c := g.copies(t, ctx)
	if len(c) != 1 || !c[hv].Running() {
		t.Fatalf("%s: copies %+v, want one, running on %s", g.name, c, hv)
	}
}

// droverMigrate runs `bin/drover migrate` on the guest's schema with extra environment and
// returns the wall time and the journal row it wrote.
func (g *guest) droverMigrate(t *testing.T, ctx context.Context, bin, to string, env ...string) (time.Duration, store.Migration) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "migrate", g.name, "--to", to)
	cmd.Env = append(append(os.Environ(), "DROVER_DATABASE_URL="+g.dbURL), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("drover migrate %s --to %s: %v\n%s", g.name, to, err, out)
	}
	ms, err := g.st.MigrationsOfVnode(ctx, g.name)
	if err != nil || len(ms) == 0 {
		t.Fatalf("journal of %s: %d rows, %v", g.name, len(ms), err)
	}
	last := ms[0]
	for _, m := range ms {
		if m.ID > last.ID {
			last = m
		}
	}
	if last.Phase != "done" || last.Dst != to {
		t.Fatalf("journal says %+v after drover migrate %s --to %s", last, g.name, to)
	}
	return wall, last
}

// virshMigrate moves the guest from→to with bare virsh, as an operator would without drover:
// the same maximum downtime, migration URI and flags drover sets (live, abort on error; no
// bandwidth cap and no auto-converge unless configured), timed from virsh's start to its exit.
// It returns the wall time and the destination's completed-job statistics.
func (g *guest) virshMigrate(t *testing.T, ctx context.Context, from, to string, maxDowntime time.Duration) (time.Duration, jobInfo) {
	t.Helper()
	src, dst := g.hv(t, from), g.hv(t, to)
	flags := "--live --abort-on-error"
	if g.cfg.Migration.AutoConverge {
		flags += " --auto-converge"
	}
	if g.cfg.Migration.BandwidthMiBs > 0 {
		flags += fmt.Sprintf(" --bandwidth %d", g.cfg.Migration.BandwidthMiBs)
	}
	script := fmt.Sprintf("migrate-setmaxdowntime %s %d; migrate %s %s %s %s",
		g.name, maxDowntime.Milliseconds(), flags, g.name, dst.URI, dst.MigrationURI)
	cmd := exec.CommandContext(ctx, "virsh", "-q", "-c", src.URI, script)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("virsh -c %s %q: %v\n%s", src.URI, script, err, out)
	}
	info, err := exec.CommandContext(ctx, "virsh", "-c", dst.URI, "domjobinfo", "--completed", g.name).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh domjobinfo --completed %s on %s: %v\n%s", g.name, to, err, info)
	}
	ji, err := parseJobInfo(string(info))
	if err != nil {
		t.Fatalf("virsh domjobinfo --completed %s on %s: %v\n%s", g.name, to, err, info)
	}
	return wall, ji
}

func (g *guest) hv(t *testing.T, name string) config.Hypervisor {
	t.Helper()
	for _, h := range g.cfg.Hypervisors {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("no hypervisor %q in the testbed's config", name)
	return config.Hypervisor{}
}

// jobInfo is what `virsh domjobinfo --completed` says about a migration.
type jobInfo struct {
	ElapsedMS, DowntimeMS float64
	MiBProcessed          float64
}

// parseJobInfo reads "Time elapsed: 1234 ms", "Total downtime: 56 ms" and "Data processed:
// 1.2 GiB" from virsh's table.
func parseJobInfo(s string) (jobInfo, error) {
	var ji jobInfo
	found := map[string]bool{}
	for _, line := range strings.Split(s, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key, f := strings.TrimSpace(key), strings.Fields(val)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		switch key {
		case "Time elapsed", "Total downtime":
			if f[1] != "ms" {
				return ji, fmt.Errorf("%s in %q, want ms", key, f[1])
			}
			if key == "Time elapsed" {
				ji.ElapsedMS = n
			} else {
				ji.DowntimeMS = n
			}
		case "Data processed":
			unit := map[string]float64{"B": 1.0 / (1 << 20), "KiB": 1.0 / 1024, "MiB": 1, "GiB": 1024}[f[1]]
			if unit == 0 {
				return ji, fmt.Errorf("data processed in unknown unit %q", f[1])
			}
			ji.MiBProcessed = n * unit
		default:
			continue
		}
		found[key] = true
	}
	if !found["Time elapsed"] || !found["Total downtime"] {
		return ji, errors.New("no \"Time elapsed\" or \"Total downtime\" line")
	}
	return ji, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// unfinished is a vnode's unfinished journal row: its id and phase, or 0 and "" when none.
func (e *env) unfinished(ctx context.Context, vnode string) (int64, string) {
	var id int64
	var phase string
	err := e.pool.QueryRow(ctx, `SELECT id, phase FROM migrations
	                             WHERE vnode = $1 AND phase NOT IN ('done', 'failed', 'rolled_back')`, vnode).Scan(&id, &phase)
	if err != nil {
		return 0, ""
	}
	return id, phase
}

// lastMoved is when the vnode's newest journal row was created; zero when it has none.
func (e *env) lastMoved(ctx context.Context, vnode string) time.Time {
	var at *time.Time
	if err := e.pool.QueryRow(ctx, `SELECT max(created_at) FROM migrations WHERE vnode = $1`, vnode).Scan(&at); err != nil {
		e.t.Fatalf("journal of %s: %v", vnode, err)
	}
	if at == nil {
		return time.Time{}
	}
	return *at
}

// coolVnode picks the vnode moved longest ago (never moved first). drover server leaves a vnode
// moved within control.cooldown alone unless its host is critical, so a test of the control loop
// needs one moved longer ago than that; it fails when there is none.
func (e *env) coolVnode(ctx context.Context) string {
	e.t.Helper()
	cfg := testenv.Config(e.t)
	names, err := hostlist.Expand(cfg.Vnodes.Nodes)
	if err != nil {
		e.t.Fatal(err)
	}
	best, bestAt := "", time.Now()
	for _, n := range names {
		if at := e.lastMoved(ctx, n); best == "" || at.Before(bestAt) {
			best, bestAt = n, at
		}
	}
	if !bestAt.IsZero() && time.Since(bestAt) < cfg.Control.Cooldown {
		e.t.Fatalf("every vnode of %s was migrated within control.cooldown (%v; the least recent, %s, %v ago): drover server would not move it ahead of a breach; wait or lower control.cooldown",
			cfg.Vnodes.Nodes, cfg.Control.Cooldown, best, time.Since(bestAt).Round(time.Second))
	}
	return best
}

// submitTo sends a tick job (n ticks, one a second) to the migratable partition, on vnode when
// set, and cancels it if the test ends first.
func (e *env) submitTo(name, vnode string, n int, limit time.Duration) (int, error) {
	res, err := e.rest.Submit(context.Background(), slurm.SubmitRequest{
		Name: name, Partition: "migratable", Script: "#!/bin/bash\n" + tickScript(e.ticks.addr(), n), Nodes: 1, Tasks: 1,
		NodeList: vnode, WorkDir: "/tmp", StdOut: "/tmp/" + name + "-%j.out", TimeLimit: limit,
	})
	if err != nil {
		return 0, fmt.Errorf("submit %s: %w", name, err)
	}
	id := res.JobID
	e.t.Cleanup(func() { _ = e.rest.Cancel(context.Background(), id) })
	return int(id), nil
}

// hotUntilPlaced makes Slurm boot vnode for a tick job on hv: vnode is powered down, the other
// hypervisor's BMC reads hot (88 °C, 850 W) while the job's vnode is resumed and placed, and cool
// again (45 °C, 300 W) once its VM runs. A test of the control loop must not move the vnode there
// itself: a moved vnode sits out control.cooldown. It returns the job's id once the job ticks.
func (e *env) hotUntilPlaced(t *testing.T, ctx context.Context, vnode, hv, name string, ticks int, limit time.Duration) int {
	t.Helper()
	e.powerDownAll(vnode)
	hot := other(hv)
	var id int
	t.Run("place-on-"+hv, func(t *testing.T) { // holds the other BMC only while placing
		testenv.LockBMC(t, hot)
		t.Cleanup(func() {
			testenv.Script(t, "sensor", hot, "cpu", "45")
			testenv.Script(t, "sensor", hot, "power", "300")
		})
		testenv.Script(t, "sensor", hv, "cpu", "45") // hv's own BMC: the caller holds it
		testenv.Script(t, "sensor", hot, "cpu", "88")
		testenv.Script(t, "sensor", hot, "power", "850")
		e.waitTemp(t, ctx, hot, 30*time.Second, func(c float64) bool { return c >= 88 }, "at least 88 °C")
		var err error
		if id, err = e.submitTo(name, vnode, ticks, limit); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(4 * time.Minute)
		for {
			if v, err := e.st.GetVnode(ctx, vnode); err == nil && v.Hypervisor != "" && v.State != "absent" && v.State != "failed" {
				if v.Hypervisor != hv {
					t.Fatalf("vnode %s of job %d was placed on %s although %s read hot; want %s (drover explain %s)", vnode, id, v.Hypervisor, hot, hv, vnode)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("vnode %s of job %d not running within 4 minutes", vnode, id)
			}
			time.Sleep(250 * time.Millisecond)
		}
		// cool again, and seen so, while the BMC is ours
		testenv.Script(t, "sensor", hot, "cpu", "45")
		testenv.Script(t, "sensor", hot, "power", "300")
		e.waitHealthy(t, ctx, hot)
	})
	if t.Failed() {
		t.FailNow()
	}
	e.ticks.waitTick(t, id, 0, 1, 3*time.Minute)
	e.mustBeRunning(t, ctx, vnode, id)
	return id
}

// mustBeRunning checks that drover records vnode, whose job ticks, as running: the control loop
// moves running vnodes only. When the row still says booting, the test fails (Slurm's
// PrologSlurmctld, drover's job-start hook, runs when the job is allocated, before the resume hook
// has booted the VM, so its "mark the job's vnodes running" finds nothing to mark), then marks it
// running the way the job-start hook would have, so that the rest of the test still measures
// the control loop.
func (e *env) mustBeRunning(t *testing.T, ctx context.Context, vnode string, job int) {
	t.Helper()
	var v store.Vnode
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		var err error
		if v, err = e.st.GetVnode(ctx, vnode); err == nil && v.State == "running" {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	// nothing marks a job-booted vnode running (job-start runs before the VM boots); the control
	// loop moves booting vnodes too, so this is a note, not a failure
	t.Logf("vnode %s runs job %d but drover records it as %q (job-start ran before the VM booted); marking it running", vnode, job, v.State)
	if err := e.st.VnodesRunning(ctx, []string{vnode}, int64(job)); err != nil {
		t.Fatal(err)
	}
}

// waitTemp waits until the agents' newest reading of hv's hottest sensor satisfies ok.
func (e *env) waitTemp(t *testing.T, ctx context.Context, hv string, timeout time.Duration, ok func(float64) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var c *float64
		err := e.pool.QueryRow(ctx, `SELECT k.temp_max_celsius FROM host_kpi_now k JOIN hypervisors h ON h.id = k.hypervisor_id
		                             WHERE h.name = $1 AND k.ts > now() - interval '10 seconds'`, hv).Scan(&c)
		if err == nil && c != nil && ok(*c) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's readings of %s did not show %s within %v (last %v, %v): is `scripts/testbed status` all up?", hv, what, timeout, deref(c), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// hostHealth is hv's current health as drover records it (host_health).
func (e *env) hostHealth(ctx context.Context, hv string) string {
	var s string
	_ = e.pool.QueryRow(ctx, `SELECT hh.state FROM host_health hh JOIN hypervisors h ON h.id = hh.hypervisor_id WHERE h.name = $1`, hv).Scan(&s)
	return s
}

// domainsOf lists, per hypervisor, the libvirt domains called name.
func domainsOf(t *testing.T, ctx context.Context, conns *migrate.Pool, hvs []config.Hypervisor, name string) map[string]virt.Domain {
	t.Helper()
	return testenv.Copies(t, ctx, conns.Conn, hvs, name)
}

// contiguous checks that a task's ticks so far are 1..n in order and returns n and the largest gap.
func (l *listener) contiguous(job, task int) (int, time.Duration, error) {
	ts := l.of(job, task)
	var gap time.Duration
	for i, tk := range ts {
		if tk.n != i+1 {
			return i, gap, fmt.Errorf("job %d task %d: tick %d arrived as number %d (out of order or lost)", job, task, tk.n, i+1)
		}
		if i > 0 {
			gap = max(gap, tk.at.Sub(ts[i-1].at))
		}
	}
	return len(ts), gap, nil
}

// serverPID is drover server's pid from the testbed's pid file.
func serverPID(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Config(t).Testbed.Dir, "drover", "server.pid"))
	if err != nil {
		t.Fatalf("drover server's pid file: %v (scripts/testbed up drover)", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("drover server's pid file holds %q", b)
	}
	return pid
}

// alive reports whether pid is a live, non-zombie process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// restartServer runs `scripts/testbed up drover`, which starts drover server again (and waits
// until it leads and the agents report), with the environment the testbed was started with:
// none of this test's DROVER_ settings leak into the server.
func restartServer(t *testing.T) {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "DROVER_") && k != "DROVER_TESTBED_DIR" && !strings.HasPrefix(k, "DROVER_TB_") {
			continue
		}
		env = append(env, kv)
	}
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "scripts", "testbed"), "up", "drover")
	cmd.Env = env
	cmd.Dir = testenv.RepoRoot()
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("scripts/testbed up drover did not finish within 2 minutes:\n%s", out)
	}
	if err != nil {
		t.Fatalf("scripts/testbed up drover: %v\n%s", err, out)
	}
}
