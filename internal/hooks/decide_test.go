package hooks

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/server"
	"github.com/drover-hpc/drover/internal/slurm"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/internal/vnode"
	"github.com/drover-hpc/drover/scheduler"
)

type fakeJobs struct {
	job slurm.Job
	err error
}

func (f fakeJobs) Job(context.Context, uint32) (slurm.Job, error) { return f.job, f.err }

type fakeServer struct {
	got server.PlaceRequest
	d   scheduler.Decision
	err error
}

func (f *fakeServer) Place(_ context.Context, req server.PlaceRequest) (scheduler.Decision, error) {
	f.got = req
	return f.d, f.err
}

func testHosts() []*host {
	return []*host{
		{cfg: config.Hypervisor{Name: "hv1"}, vnodes: map[string]bool{"vn1": true}, freeMB: -1},
		{cfg: config.Hypervisor{Name: "hv2"}, vnodes: map[string]bool{"vn2": true}, freeMB: -1},
	}
}

// The request carries the job's constraint, time limit and hints, and the hosts of the job's
// other vnodes (vn1 on hv1, vn2 on hv2; vn3 is the one placed, vn4 runs nowhere yet).
func TestRequestFromJob(t *testing.T) {
	h := &Hooks{Jobs: fakeJobs{job: slurm.Job{TimeLimit: time.Hour, Comment: "nightly drover:spread", Constraint: "ib"}}}
	job := ResumeJob{JobID: 42, Nodes: "vn[1-4]"}
	req, err := h.request(context.Background(), zerolog.Nop(), "vn3", 2, 1024, job, testHosts())
	if err != nil {
		t.Fatal(err)
	}
	if req.VNode != "vn3" || req.JobID != 42 || req.CPUs != 2 || req.MemoryMiB != 1024 || req.TimeLimit != time.Hour ||
		req.Constraint != "ib" || !req.Hints.Spread || !slices.Equal(req.JobHosts, []string{"hv1", "hv2"}) {
		t.Errorf("request = %+v", req)
	}
	// the resume file's features win over the job record; its extra carries hints too
	job.Features, job.Extra = "gpu", "drover:no-migrate"
	req, err = h.request(context.Background(), zerolog.Nop(), "vn3", 2, 1024, job, testHosts())
	if err != nil || req.Constraint != "gpu" || !req.Hints.NoMigrate || !req.Hints.Spread {
		t.Errorf("with resume file features/extra: %+v, %v", req, err)
	}
	// slurmrestd down: placement goes on with what the resume file says
	h.Jobs = fakeJobs{err: errors.New("connection refused")}
	req, err = h.request(context.Background(), zerolog.Nop(), "vn3", 2, 1024, ResumeJob{JobID: 42}, testHosts())
	if err != nil || req.TimeLimit != 0 || req.Hints != (scheduler.Hints{}) {
		t.Errorf("without the job record: %+v, %v", req, err)
	}
	// a typo'd hint refuses the resume with the word named
	h.Jobs = fakeJobs{job: slurm.Job{Comment: "drover:sprd"}}
	if _, err := h.request(context.Background(), zerolog.Nop(), "vn3", 2, 1024, job, testHosts()); err == nil ||
		!strings.Contains(err.Error(), `"drover:sprd"`) {
		t.Errorf("typo'd hint: err = %v", err)
	}
}

// With a server, the hook sends the request with the hypervisors it cannot reach, and refuses a
// choice it cannot carry out; server errors become the node's DOWN reason.
func TestDecideAsksTheServer(t *testing.T) {
	fs := &fakeServer{d: scheduler.Decision{Host: "hv1"}}
	h := &Hooks{Server: fs}
	req := scheduler.Request{VNode: "vn3", JobID: 42, CPUs: 1, MemoryMiB: 512, TimeLimit: 90 * time.Second,
		Hints: scheduler.Hints{Pack: true}, JobHosts: []string{"hv2"}}
	_, err := h.decide(context.Background(), req, testHosts()) // no conn anywhere: both unreachable
	if err == nil || !strings.Contains(err.Error(), "the server chose hv1, which this hook cannot reach") {
		t.Errorf("err = %v", err)
	}
	if !slices.Equal(fs.got.Unreachable, []string{"hv1", "hv2"}) || fs.got.TimeLimitS != 90 || !fs.got.Hints.Pack ||
		fs.got.VNode != "vn3" || !slices.Equal(fs.got.JobHosts, []string{"hv2"}) {
		t.Errorf("sent %+v", fs.got)
	}
	fs.d, fs.err = scheduler.Decision{}, server.ErrNotLeader
	if _, err := h.decide(context.Background(), req, testHosts()); !errors.Is(err, server.ErrNotLeader) ||
		!strings.HasPrefix(err.Error(), "no placement: ") {
		t.Errorf("server error: %v", err)
	}
	fs.err = nil // no host fits: not an error, the caller reports the decision's reason
	fs.d = scheduler.Decision{Reason: "no hypervisor fits"}
	if d, err := h.decide(context.Background(), req, testHosts()); err != nil || d.Host != "" {
		t.Errorf("unplaceable: %+v, %v", d, err)
	}
}

// job-start records the job's hints, memory and constraint from its Slurm record, so the control
// loop can honour drover:no-migrate.
func TestJobStartRecordsHints(t *testing.T) {
	_, pool := testenv.MigratedSchema(t)
	cat, err := vnode.NewCatalog(config.Vnodes{}, "qemu")
	if err != nil {
		t.Fatal(err)
	}
	h := &Hooks{Store: store.New(pool), Catalog: cat, Log: zerolog.Nop()}
	src := fakeJobs{job: slurm.Job{Comment: "nightly drover:no-migrate", MemoryPerNode: 2048, Constraint: "ib", TimeLimit: time.Hour}}
	ctx := context.Background()
	if err := h.JobStart(ctx, src, store.Job{ID: 77, Nodes: []string{"vn1"}}); err != nil {
		t.Fatal(err)
	}
	j, err := h.Store.GetJob(ctx, 77)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(j.Hints, []string{scheduler.HintNoMigrate}) || j.TimeLimit == nil || *j.TimeLimit != time.Hour {
		t.Errorf("job 77 recorded hints %q, time limit %v", j.Hints, j.TimeLimit)
	}
	// a typo'd hint is left out (the resume hook refuses such a job with the word named)
	src.job.Comment = "drover:no-migrat"
	if err := h.JobStart(ctx, src, store.Job{ID: 78}); err != nil {
		t.Fatal(err)
	}
	if j, err := h.Store.GetJob(ctx, 78); err != nil || len(j.Hints) != 0 {
		t.Errorf("job 78 (typo): hints %q, %v", j.Hints, err)
	}
}

// Suspend first waits for a vnode's live migration to end (bounded), so Slurm powering a vnode
// down never destroys it mid-migration.
func TestSuspendAwaitsMigration(t *testing.T) {
	_, pool := testenv.MigratedSchema(t)
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO hypervisors (name, uri) VALUES ('hv1', 'qemu:///a'), ('hv2', 'qemu:///b')`,
		`INSERT INTO migrations (vnode, src_hypervisor_id, dst_hypervisor_id, reason, phase)
		 SELECT 'vn1', a.id, b.id, 'evacuation', 'transferring' FROM hypervisors a, hypervisors b WHERE a.name = 'hv1' AND b.name = 'hv2'`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	h := &Hooks{Store: store.New(pool), Log: zerolog.Nop()}
	start := time.Now()
	h.awaitMigrations(ctx, []string{"vn2"}) // nothing under way: no wait
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("no migration: waited %v", d)
	}
	go func() {
		time.Sleep(600 * time.Millisecond)
		_, _ = pool.Exec(ctx, `UPDATE migrations SET phase = 'done', finished_at = now() WHERE vnode = 'vn1'`)
	}()
	start = time.Now()
	h.awaitMigrations(ctx, []string{"vn1"})
	if d := time.Since(start); d < 500*time.Millisecond || d > 5*time.Second {
		t.Errorf("waited %v for a migration that ended after 0.6 s", d)
	}
	old := SuspendMigrationWait
	SuspendMigrationWait = 300 * time.Millisecond
	defer func() { SuspendMigrationWait = old }()
	if _, err := pool.Exec(ctx, `INSERT INTO migrations (vnode, src_hypervisor_id, dst_hypervisor_id, reason, phase)
		SELECT 'vn3', a.id, b.id, 'evacuation', 'preparing' FROM hypervisors a, hypervisors b WHERE a.name = 'hv1' AND b.name = 'hv2'`); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	h.awaitMigrations(ctx, []string{"vn3"}) // never ends: bounded
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("waited %v for a migration that never ends, want about the 0.3 s bound", d)
	}
}
