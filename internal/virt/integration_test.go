package virt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/internal/virt"
)

// These tests run against the testbed's libvirt hypervisors (scripts/testbed up net libvirt) and
// are skipped without it.

// connect opens a Conn to hv and closes it when the test ends.
func connect(t *testing.T, cfg *config.Config, hv config.Hypervisor) *virt.Conn {
	t.Helper()
	timeout := cfg.Libvirt.ConnectTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := virt.Connect(ctx, hv.Name, hv.URI)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestTestbedHypervisors(t *testing.T) {
	cfg := testenv.Config(t)
	if len(cfg.Hypervisors) < 2 {
		t.Fatalf("testbed has %d hypervisors, want at least 2", len(cfg.Hypervisors))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, hv := range cfg.Hypervisors {
		c := connect(t, cfg, hv)
		v, err := c.Version()
		if err != nil {
			t.Fatalf("%v", err)
		}
		// "libvirt 9.0.0, QEMU 7.2.0" on Debian bookworm
		if !regexp.MustCompile(`^libvirt \d+\.\d+\.\d+, QEMU \d+\.\d+\.\d+$`).MatchString(v) {
			t.Errorf("%s: Version = %q, want libvirt X.Y.Z, QEMU X.Y.Z", hv.Name, v)
		}
		// each testbed libvirtd has its own UTS namespace named after its hypervisor
		if h, err := c.Hostname(ctx); err != nil || h != hv.Name {
			t.Errorf("%s: Hostname = %q, %v; want %q", hv.Name, h, err, hv.Name)
		}
		info, err := c.HostInfo(ctx)
		if err != nil || info.CPUs < 1 || info.MemoryBytes == 0 || info.FreeBytes > info.MemoryBytes {
			t.Errorf("%s: HostInfo = %+v, %v", hv.Name, info, err)
		}
		t.Logf("%s: %s, %d CPUs, %d MiB", hv.Name, v, info.CPUs, info.MemoryBytes>>20)
	}
}

func TestTestbedGuestLifecycle(t *testing.T) {
	cfg := testenv.Config(t)
	if len(cfg.Hypervisors) < 2 {
		t.Fatalf("testbed has %d hypervisors, want at least 2", len(cfg.Hypervisors))
	}
	hv1, hv2 := cfg.Hypervisors[0], cfg.Hypervisors[1]
	c1, c2 := connect(t, cfg, hv1), connect(t, cfg, hv2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	out := filepath.Join(cfg.Testbed.Dir, "guest", "out")
	if _, err := os.Stat(filepath.Join(out, "vmlinuz")); err != nil {
		t.Fatalf("no test guest (%v): run scripts/testbed up libvirt", err)
	}
	name := fmt.Sprintf("virt-it-%d-%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	serial := filepath.Join(t.TempDir(), name+".serial") // removed after the domain (cleanups run LIFO)
	spec := virt.DomainSpec{
		Name:      name,
		MemoryMiB: 128,
		VCPUs:     1,
		Type:      virt.DomainType(cfg.Libvirt.DomainType),
		Kernel:    filepath.Join(out, "vmlinuz"),
		Initrd:    filepath.Join(out, "initramfs.cpio.gz"),
		Cmdline:   "console=ttyS0 quiet panic=-1 dirty_mb=16 dirty_rate=4",
		SerialLog: serial,
	}
	xml, err := spec.XML()
	if err != nil {
		t.Fatal(err)
	}

	d, err := c1.Define(ctx, xml)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		// a fresh context: the test's own may have expired
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c1.Destroy(ctx, name); err != nil && !errors.Is(err, virt.ErrWrongState) && !errors.Is(err, virt.ErrNoDomain) {
			t.Errorf("cleanup: %v", err)
		}
		if err := c1.Undefine(ctx, name); err != nil && !errors.Is(err, virt.ErrNoDomain) {
			t.Errorf("cleanup: %v", err)
		}
	})
	if d.State != virt.StateShutOff || !d.Persistent {
		t.Errorf("after Define: %+v", d)
	}

	start := time.Now()
	if err := c1.Start(ctx, name); err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("Start took %v", time.Since(start).Round(time.Millisecond))
	if err := c1.Start(ctx, name); !errors.Is(err, virt.ErrWrongState) {
		t.Errorf("Start of a running domain = %v, want ErrWrongState", err)
	}

	// listed as running on hv1, absent from hv2
	if d := find(t, ctx, c1, name); d == nil || !d.Running() || !d.Active {
		t.Errorf("%s: List entry for %s = %+v, want running", hv1.Name, name, d)
	}
	if d := find(t, ctx, c2, name); d != nil {
		t.Errorf("%s: List has %+v, want no %s there", hv2.Name, d, name)
	}

	// the guest boots and its heartbeat program writes to the serial log
	n, lines := waitHeartbeat(t, serial, 3, 90*time.Second)
	t.Logf("heartbeat %d seen %v after Start", n, time.Since(start).Round(time.Millisecond))
	if !strings.Contains(lines, "mb=16 rate=4") {
		t.Errorf("heartbeat lines do not echo the kernel command line's dirty_mb/dirty_rate:\n%s", lines)
	}

	stats, err := c1.DomainStats(ctx, name)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if len(stats) != 1 {
		t.Fatalf("DomainStats = %+v, want one record", stats)
	}
	st := stats[0]
	// 128 MiB with no balloon device: current = maximum = 128<<20 bytes; 1 vCPU; a booted guest
	// has used some CPU time
	if st.Name != name || st.State != virt.StateRunning || st.VCPUs != 1 ||
		st.MaxMemoryBytes != 128<<20 || st.MemoryBytes != 128<<20 || st.CPUTime <= 0 {
		t.Errorf("DomainStats = %+v", st)
	}

	if err := c1.Destroy(ctx, name); err != nil {
		t.Fatalf("%v", err)
	}
	if d, err := c1.Lookup(ctx, name); err != nil || d.State != virt.StateShutOff || d.Active {
		t.Errorf("after Destroy: %+v, %v; want shut off", d, err)
	}
	if err := c1.Undefine(ctx, name); err != nil {
		t.Fatalf("%v", err)
	}
	if _, err := c1.Lookup(ctx, name); !errors.Is(err, virt.ErrNoDomain) {
		t.Errorf("Lookup after Undefine = %v, want ErrNoDomain", err)
	}
}

// find returns the List entry for name on c, or nil.
func find(t *testing.T, ctx context.Context, c *virt.Conn, name string) *virt.Domain {
	t.Helper()
	list, err := c.List(ctx)
	if err != nil {
		t.Fatalf("%v", err)
	}
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

var hbRE = regexp.MustCompile(`(?m)^HB (\d+) `)

// waitHeartbeat polls the serial log until it shows heartbeat number want, and returns the last
// heartbeat number and the log's heartbeat lines.
func waitHeartbeat(t *testing.T, path string, want int, timeout time.Duration) (int, string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if m := hbRE.FindAllSubmatch(b, -1); len(m) > 0 {
			n, _ := strconv.Atoi(string(m[len(m)-1][1]))
			if n >= want {
				var lines []string
				for _, l := range strings.Split(string(b), "\n") {
					if strings.HasPrefix(l, "HB ") {
						lines = append(lines, l)
					}
				}
				return n, strings.Join(lines, "\n")
			}
		}
		if time.Now().After(deadline) {
			tail := string(b)
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			t.Fatalf("no heartbeat %d in %s within %v; serial log ends:\n%s", want, path, timeout, tail)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
