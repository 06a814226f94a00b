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
		Cmdline: "console=ttyS0 quiet panic=-1 " + cmdline, SerialLog: g.serial}.XML()
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
	out := map[string]virt.Domain{}
	for _, h := range g.cfg.Hypervisors {
		d, err := g.conn(t, ctx, h.Name).Lookup(ctx, g.name)
		switch {
		case errors.Is(err, virt.ErrNoDomain):
		case err != nil:
			t.Fatalf("%s: %v", h.Name, err)
		default:
			out[h.Name] = d
		}
	}
	return out
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
