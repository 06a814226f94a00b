package hooks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/hooks"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/internal/virt"
	"github.com/drover-hpc/drover/internal/vnode"
	"github.com/drover-hpc/drover/scheduler"
)

// downs records what the hooks asked Slurm to set DOWN (no real Slurm node is touched here).
type downs struct {
	mu sync.Mutex
	m  map[string]string
}

func (d *downs) Down(_ context.Context, node, reason string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[node] = reason
	return nil
}

func (d *downs) reason(node string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[node]
}

// testHooks builds hooks on the testbed's hypervisors with a catalog of test vnodes that boot the
// small heartbeat guest (no NIC), in a database schema of the test's own.
func testHooks(t *testing.T, kernel string, hvs []config.Hypervisor) (*hooks.Hooks, *downs, []string) {
	t.Helper()
	cfg := testenv.Config(t)
	_, pool := testenv.MigratedSchema(t)
	st := store.New(pool)
	if err := st.SyncHypervisors(context.Background(), cfg.Hypervisors); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(cfg.Testbed.Dir, "guest", "out")
	if kernel == "" {
		kernel = filepath.Join(out, "vmlinuz")
	}
	prefix := fmt.Sprintf("hk%d-", os.Getpid()%100000)
	cat, err := vnode.NewCatalog(config.Vnodes{
		Nodes: prefix + "[1-2]", FirstAddress: "198.18.0.200/24", CPUs: 1, MemoryMiB: 128,
		Kernel: kernel, Initrd: filepath.Join(out, "initramfs.cpio.gz"),
		Cmdline: "console=ttyS0 quiet panic=-1 dirty_mb=8 dirty_rate=1", SerialDir: t.TempDir(),
	}, cfg.Libvirt.DomainType)
	if err != nil {
		t.Fatal(err)
	}
	d := &downs{m: map[string]string{}}
	h := &hooks.Hooks{Store: st, Catalog: cat, Hypervisors: hvs, Placer: scheduler.LeastLoaded{}, Slurm: d,
		Log: zerolog.New(zerolog.NewTestWriter(t)), ConnectTimeout: 5 * time.Second}
	names := cat.Names()
	t.Cleanup(func() { // destroy the test vnodes wherever they are
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, hv := range cfg.Hypervisors {
			c, err := virt.Connect(ctx, hv.Name, hv.URI)
			if err != nil {
				continue
			}
			for _, n := range names {
				_ = c.Destroy(ctx, n)
			}
			_ = c.Close()
		}
	})
	return h, d, names
}

func TestTestbedResumeSuspend(t *testing.T) {
	cfg := testenv.Config(t)
	h, d, names := testHooks(t, "", cfg.Hypervisors)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	job := map[string]hooks.ResumeJob{names[0]: {JobID: 77}}

	outs, err := h.Resume(ctx, names, job)
	if err != nil {
		t.Fatalf("resume: %v (%+v)", err, outs)
	}
	// two vnodes, two empty hypervisors: least loaded spreads them, hv1 first by name
	if len(outs) != 2 || outs[0].Action != "started" || outs[1].Action != "started" || outs[0].Hypervisor == outs[1].Hypervisor {
		t.Fatalf("outcomes %+v, want both started on different hypervisors", outs)
	}
	v, err := h.Store.GetVnode(ctx, names[0])
	if err != nil || v.State != "booting" || v.Hypervisor != outs[0].Hypervisor || v.JobID == nil || *v.JobID != 77 {
		t.Fatalf("vnode row %+v, %v", v, err)
	}

	// Slurm may call ResumeProgram twice: nothing new is started
	again, err := h.Resume(ctx, names[:1], nil)
	if err != nil || again[0].Action != "already-running" || again[0].Hypervisor != outs[0].Hypervisor {
		t.Fatalf("second resume: %+v, %v", again, err)
	}

	sus, err := h.Suspend(ctx, names)
	if err != nil || sus[0].Action != "destroyed" || sus[1].Action != "destroyed" {
		t.Fatalf("suspend: %+v, %v", sus, err)
	}
	if v, _ := h.Store.GetVnode(ctx, names[1]); v.State != "absent" || v.Hypervisor != "" {
		t.Fatalf("after suspend: %+v", v)
	}
	if sus, err := h.Suspend(ctx, names[:1]); err != nil || sus[0].Action != "absent" {
		t.Fatalf("second suspend: %+v, %v", sus, err)
	}
	if len(d.m) != 0 {
		t.Fatalf("nodes set DOWN in a good run: %v", d.m)
	}
}

func TestTestbedResumeFailures(t *testing.T) {
	cfg := testenv.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// a node that is not a vnode: DOWN with the reason
	h, d, names := testHooks(t, "", cfg.Hypervisors)
	if _, err := h.Resume(ctx, []string{"n1"}, nil); err == nil || !strings.Contains(d.reason("n1"), "not a drover vnode") {
		t.Errorf("unknown node: err %v, DOWN reason %q", err, d.reason("n1"))
	}

	// the hypervisor refuses the domain (its kernel does not exist): DOWN, recorded as failed
	h, d, names = testHooks(t, "/nonexistent/vmlinuz", cfg.Hypervisors)
	outs, err := h.Resume(ctx, names[:1], nil)
	if err == nil || outs[0].Action != "failed" || !strings.Contains(d.reason(names[0]), "refused the VM") {
		t.Errorf("refused domain: %+v, err %v, DOWN reason %q", outs, err, d.reason(names[0]))
	}
	if v, _ := h.Store.GetVnode(ctx, names[0]); v.State != "failed" || !strings.Contains(v.Reason, "refused") {
		t.Errorf("vnode row after refusal: %+v", v)
	}

	// no hypervisor answers: unplaceable, with every host's reason
	dead := []config.Hypervisor{{Name: "hv1", URI: "qemu+tcp://198.18.0.2:1/system"}, {Name: "hv2", URI: "qemu+tcp://198.18.0.3:1/system"}}
	h, d, names = testHooks(t, "", dead)
	outs, err = h.Resume(ctx, names[:1], nil)
	r := d.reason(names[0])
	if err == nil || outs[0].Action != "failed" || !strings.Contains(r, "hv1: unreachable") || !strings.Contains(r, "hv2: unreachable") {
		t.Errorf("no hypervisors: %+v, err %v, DOWN reason %q", outs, err, r)
	}
	// suspend must not claim a vnode is gone when it cannot look everywhere
	if sus, err := h.Suspend(ctx, names[:1]); err == nil || sus[0].Action != "failed" {
		t.Errorf("suspend with hypervisors unreachable: %+v, %v", sus, err)
	}
}
