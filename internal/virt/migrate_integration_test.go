package virt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/internal/virt"
)

// startGuest creates a transient heartbeat guest on c and destroys it (wherever it ended up) when
// the test ends. It returns the domain name and its serial log.
func startGuest(t *testing.T, ctx context.Context, conns []*virt.Conn, memMiB int, cmdline string) (string, string) {
	t.Helper()
	cfg := testenv.Config(t)
	out := filepath.Join(cfg.Testbed.Dir, "guest", "out")
	name := fmt.Sprintf("mig-it-%d-%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	serial := filepath.Join(t.TempDir(), name+".serial")
	xml, err := virt.DomainSpec{
		Name: name, MemoryMiB: memMiB, VCPUs: 1, Type: virt.DomainType(cfg.Libvirt.DomainType),
		Kernel: filepath.Join(out, "vmlinuz"), Initrd: filepath.Join(out, "initramfs.cpio.gz"),
		Cmdline: "console=ttyS0 quiet panic=-1 " + cmdline, SerialLog: serial,
	}.XML()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conns[0].Create(ctx, xml); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, c := range conns {
			if err := c.Destroy(ctx, name); err != nil && !errors.Is(err, virt.ErrNoDomain) && !errors.Is(err, virt.ErrWrongState) {
				t.Errorf("cleanup on %s: %v", c.Name(), err)
			}
		}
	})
	return name, serial
}

// migrationGuest is a heartbeat guest started on hv1 with connections to both hypervisors and a
// context that ends after the test's timeout.
type migrationGuest struct {
	cfg          *config.Config
	c1, c2       *virt.Conn
	ctx          context.Context
	name, serial string
}

// newMigrationGuest starts the guest and waits for two heartbeats.
func newMigrationGuest(t *testing.T, timeout time.Duration, memMiB int, cmdline string) migrationGuest {
	t.Helper()
	cfg := testenv.Config(t)
	g := migrationGuest{cfg: cfg, c1: connect(t, cfg, cfg.Hypervisors[0]), c2: connect(t, cfg, cfg.Hypervisors[1])}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	g.ctx = ctx
	g.name, g.serial = startGuest(t, ctx, []*virt.Conn{g.c1, g.c2}, memMiB, cmdline)
	waitHeartbeat(t, g.serial, 2, 90*time.Second)
	return g
}

func TestTestbedMigrateLive(t *testing.T) {
	g := newMigrationGuest(t, 4*time.Minute, 256, "dirty_mb=64 dirty_rate=32")
	cfg, c1, c2, ctx, name, serial := g.cfg, g.c1, g.c2, g.ctx, g.name, g.serial

	if _, err := c1.MigrateLive(ctx, name, c1, virt.MigrateOptions{}); err == nil {
		t.Fatal("migration to the same hypervisor succeeded")
	}

	for i, hop := range []struct{ from, to *virt.Conn }{{c1, c2}, {c2, c1}} {
		var calls atomic.Int32
		res, err := hop.from.MigrateLive(ctx, name, hop.to, virt.MigrateOptions{
			URI:         cfg.Hypervisors[map[*virt.Conn]int{c1: 0, c2: 1}[hop.to]].MigrationURI,
			MaxDowntime: 50 * time.Millisecond,
			Progress:    func(virt.Progress) { calls.Add(1) },
		})
		if err != nil {
			t.Fatalf("hop %d: %v", i+1, err)
		}
		t.Logf("hop %d %s→%s: wall %v, qemu %v, downtime %v, %d MiB sent, %d iterations, first bytes after %v, %d progress calls",
			i+1, hop.from.Name(), hop.to.Name(), res.Wall.Round(time.Millisecond), res.Elapsed, res.Downtime,
			res.DataProcessed>>20, res.Iterations, res.FirstProgress.Round(time.Millisecond), calls.Load())
		// 256 MiB guest, 64 MiB of it dirtied: at least the dirtied set crosses, and the pause is short
		if res.DataProcessed < 64<<20 || res.Elapsed <= 0 || res.Iterations < 1 || res.Downtime <= 0 || res.Downtime > 2*time.Second {
			t.Errorf("hop %d figures implausible: %+v", i+1, res)
		}
		if d := find(t, ctx, hop.to, name); d == nil || !d.Running() {
			b, _ := os.ReadFile(serial)
			if len(b) > 1500 {
				b = b[len(b)-1500:]
			}
			t.Fatalf("hop %d: not running on %s after migration: %+v; serial log ends:\n%s", i+1, hop.to.Name(), d, b)
		}
		if d := find(t, ctx, hop.from, name); d != nil {
			t.Fatalf("hop %d: still on %s after migration: %+v", i+1, hop.from.Name(), d)
		}
		// alive on the destination: the heartbeat goes on
		n, _ := waitHeartbeat(t, serial, 0, time.Second)
		waitHeartbeat(t, serial, n+2, 15*time.Second)
	}

	// An aborted migration leaves the guest running where it was.
	abortCtx, abort := context.WithCancel(ctx)
	go func() { time.Sleep(700 * time.Millisecond); abort() }()
	_, err := c1.MigrateLive(abortCtx, name, c2, virt.MigrateOptions{
		URI: cfg.Hypervisors[1].MigrationURI, BandwidthMiBs: 8, // 256 MiB at 8 MiB/s: far from done at 0.7 s
	})
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("aborted migration: err = %v", err)
	}
	if d := find(t, ctx, c1, name); d == nil || !d.Running() {
		t.Fatalf("after abort: not running on source: %+v", d)
	}
	if d := find(t, ctx, c2, name); d != nil {
		t.Fatalf("after abort: present on destination: %+v", d)
	}
}

// A guest that dirties memory faster than the capped link can send it never converges in
// pre-copy: with PostCopyWhenStuck the migration switches to post-copy and completes, and the
// guest lives on. With a deadline and the abort action, the same migration is cancelled at the
// deadline and the guest stays on the source.
func TestTestbedPostCopyWhenStuck(t *testing.T) {
	// 64 MiB dirtied at 48 MiB/s over a 16 MiB/s link
	g := newMigrationGuest(t, 4*time.Minute, 256, "dirty_mb=64 dirty_rate=48")
	cfg, c1, c2, ctx, name, serial := g.cfg, g.c1, g.c2, g.ctx, g.name, g.serial

	_, err := c1.MigrateLive(ctx, name, c2, virt.MigrateOptions{
		URI: cfg.Hypervisors[1].MigrationURI, BandwidthMiBs: 16, MaxDowntime: 50 * time.Millisecond,
		Deadline: 3 * time.Second, OnDeadline: virt.DeadlineAbort,
	})
	if !errors.Is(err, virt.ErrDeadline) {
		t.Fatalf("deadline with abort: err = %v, want ErrDeadline", err)
	}
	if d := find(t, ctx, c1, name); d == nil || !d.Running() {
		t.Fatalf("after the deadline: not running on the source: %+v", d)
	}

	res, err := c1.MigrateLive(ctx, name, c2, virt.MigrateOptions{
		URI: cfg.Hypervisors[1].MigrationURI, BandwidthMiBs: 16, MaxDowntime: 50 * time.Millisecond,
		PostCopyWhenStuck: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stuck pre-copy: wall %v, qemu %v, downtime %v, %d MiB sent, %d iterations, post-copy %v (%s)",
		res.Wall.Round(time.Millisecond), res.Elapsed, res.Downtime, res.DataProcessed>>20, res.Iterations, res.PostCopy, res.PostCopyWhy)
	if !res.PostCopy || !strings.HasPrefix(res.PostCopyWhy, "stuck: ") {
		t.Errorf("post-copy %v (%q), want a switch because pre-copy was stuck", res.PostCopy, res.PostCopyWhy)
	}
	if d := find(t, ctx, c2, name); d == nil || !d.Running() {
		t.Fatalf("not running on the destination after post-copy: %+v", d)
	}
	n, _ := waitHeartbeat(t, serial, 0, time.Second)
	waitHeartbeat(t, serial, n+2, 15*time.Second)
}

// With TLS the memory stream between the QEMUs is encrypted with the hypervisors' certificates
// (qemu.conf migrate_tls_x509_cert_dir): while the transfer runs, the source QEMU's migration
// parameters name libvirt's TLS credentials object; the guest arrives and lives on.
func TestTestbedMigrateTLS(t *testing.T) {
	g := newMigrationGuest(t, 3*time.Minute, 256, "dirty_mb=32 dirty_rate=16")
	cfg, c1, c2, ctx, name, serial := g.cfg, g.c1, g.c2, g.ctx, g.name, g.serial

	// the source QEMU's migration parameters, read through libvirt while the transfer runs
	var creds atomic.Value
	creds.Store("")
	watching, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watching)
		for {
			out, _ := exec.CommandContext(ctx, "virsh", "-q", "-c", cfg.Hypervisors[0].URI,
				"qemu-monitor-command", name, "--hmp", "info migrate_parameters").CombinedOutput()
			for _, line := range strings.Split(string(out), "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "tls-creds:"); ok && strings.Trim(strings.TrimSpace(v), "'\"") != "" {
					creds.Store(strings.TrimSpace(v))
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	res, err := c1.MigrateLive(ctx, name, c2, virt.MigrateOptions{URI: cfg.Hypervisors[1].MigrationURI, MaxDowntime: 50 * time.Millisecond,
		BandwidthMiBs: 48, TLS: true}) // 256 MiB at 48 MiB/s: several seconds of transfer to watch
	close(stop)
	<-watching
	if err != nil {
		t.Fatalf("TLS migration: %v", err)
	}
	t.Logf("TLS migration: wall %v, qemu %v, downtime %v, %d MiB sent; source QEMU's tls-creds %s",
		res.Wall.Round(time.Millisecond), res.Elapsed, res.Downtime, res.DataProcessed>>20, creds.Load())
	if c := creds.Load().(string); !strings.Contains(c, "tls") {
		t.Errorf("the source QEMU's migration parameters never named TLS credentials during the transfer (saw %q)", c)
	}
	if d := find(t, ctx, c2, name); d == nil || !d.Running() {
		t.Fatalf("not running on %s after the TLS migration: %+v", c2.Name(), d)
	}
	n, _ := waitHeartbeat(t, serial, 0, time.Second)
	waitHeartbeat(t, serial, n+2, 15*time.Second)
}
