//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/db"
	"github.com/drover-hpc/drover/internal/hostlist"
	"github.com/drover-hpc/drover/internal/slurm"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migration is one migration's figures, as journaled by drover.
type migration struct {
	VNode      string  `json:"vnode"`
	From       string  `json:"from"`
	To         string  `json:"to"`
	WallS      float64 `json:"wall_s"`      // drover migrate, start to exit
	TotalMS    float64 `json:"total_ms"`    // QEMU's migration time
	DowntimeMS float64 `json:"downtime_ms"` // the guest's pause
	MiBSent    float64 `json:"mib_sent"`
}

type env struct {
	t     *testing.T
	rest  *slurm.REST
	st    *store.Store
	pool  *pgxpool.Pool
	ticks *listener
	bin   string
}

func setup(t *testing.T) *env {
	cfg := testenv.Config(t)
	if cfg.Testbed.ControllerAddress == "" || cfg.Vnodes.Nodes == "" {
		t.Fatal("testbed config lacks testbed.controller_address or vnodes: rerun scripts/testbed up")
	}
	rest, err := slurm.NewREST(cfg.Slurm)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := db.Connect(context.Background(), cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	bin := filepath.Join(testenv.RepoRoot(), "bin", "drover")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v (make build)", bin, err)
	}
	return &env{t: t, rest: rest, st: store.New(pool), pool: pool, ticks: listen(t, cfg.Testbed.ControllerAddress), bin: bin}
}

// submit sends a job to the migratable partition and cancels it if the test ends first.
func (e *env) submit(name string, nodes int, script string) int {
	e.t.Helper()
	res, err := e.rest.Submit(context.Background(), slurm.SubmitRequest{
		Name: name, Partition: "migratable", Script: script, Nodes: nodes, Tasks: nodes,
		WorkDir: "/tmp", StdOut: "/tmp/" + name + "-%j.out", TimeLimit: 10 * time.Minute,
	})
	if err != nil {
		e.t.Fatalf("submit %s: %v", name, err)
	}
	id := res.JobID
	e.t.Cleanup(func() { _ = e.rest.Cancel(context.Background(), id) })
	return int(id)
}

func (e *env) job(id int) slurm.Job {
	e.t.Helper()
	j, err := e.rest.Job(context.Background(), uint32(id))
	if err != nil {
		e.t.Fatalf("job %d: %v", id, err)
	}
	return j
}

func (e *env) waitState(id int, timeout time.Duration, ok func(slurm.Job) bool, what string) slurm.Job {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j := e.job(id)
		if ok(j) {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %d not %s within %v: state %s, reason %s, nodes %q", id, what, timeout, j.State, j.Reason, j.Nodes)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// jobCompletes waits up to timeout for job id to finish, which it must do COMPLETED with exit
// code 0, and checks that each of its first tasks wrote ticks ticks in order (tasks 0: no
// check). It returns the job and the largest gap between two ticks of a task.
func (e *env) jobCompletes(id int, timeout time.Duration, tasks, ticks int) (slurm.Job, time.Duration) {
	e.t.Helper()
	j := e.waitState(id, timeout, finished, "finished")
	if j.State != slurm.JobCompleted || j.ExitCode != 0 {
		e.t.Errorf("job %d ended %s with exit code %d, want COMPLETED 0", id, j.State, j.ExitCode)
	}
	var worst time.Duration
	for task := range tasks {
		gap, err := e.ticks.check(id, task, ticks)
		if err != nil {
			e.t.Error(err)
		}
		worst = max(worst, gap)
	}
	return j, worst
}

// where is the hypervisor a vnode runs on, by drover's records.
func (e *env) where(vnode string) string {
	e.t.Helper()
	v, err := e.st.GetVnode(context.Background(), vnode)
	if err != nil {
		e.t.Fatalf("vnode %s: %v", vnode, err)
	}
	return v.Hypervisor
}

func other(hv string) string {
	if hv == "hv1" {
		return "hv2"
	}
	return "hv1"
}

// migrate moves vnode to the other hypervisor with `drover migrate`, like an operator would, and
// returns the journaled figures.
func (e *env) migrate(vnode string) migration {
	e.t.Helper()
	from := e.where(vnode)
	to := other(from)
	start := time.Now()
	cmd := exec.Command(e.bin, "migrate", vnode, "--to", to)
	// step 2 moves two vnodes between the same two hosts at once, in opposite directions
	cmd.Env = append(os.Environ(), "DROVER_MIGRATION_MAX_PER_HYPERVISOR=2")
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		e.t.Fatalf("drover migrate %s --to %s: %v\n%s", vnode, to, err, out)
	}
	ms, err := e.st.MigrationsOfVnode(context.Background(), vnode)
	if err != nil || len(ms) == 0 {
		e.t.Fatalf("journal of %s: %v", vnode, err)
	}
	last := ms[0]
	for _, m := range ms {
		if m.ID > last.ID {
			last = m
		}
	}
	if last.Phase != "done" || last.Src != from || last.Dst != to {
		e.t.Fatalf("journal says %+v after migrating %s %s→%s", last, vnode, from, to)
	}
	if got := e.where(vnode); got != to {
		e.t.Fatalf("%s recorded on %s after migrating to %s", vnode, got, to)
	}
	m := migration{VNode: vnode, From: from, To: to, WallS: wall.Seconds()}
	if last.TotalMS != nil {
		m.TotalMS = *last.TotalMS
	}
	if last.DowntimeMS != nil {
		m.DowntimeMS = *last.DowntimeMS
	}
	if last.BytesSent != nil {
		m.MiBSent = float64(*last.BytesSent) / (1 << 20)
	}
	e.t.Logf("migrated %s %s→%s: wall %.2fs, qemu %.0f ms, downtime %.0f ms, %.0f MiB", vnode, from, to, m.WallS, m.TotalMS, m.DowntimeMS, m.MiBSent)
	return m
}

func finished(j slurm.Job) bool { return j.State.Finished() }

// TestSlurmJobsSurviveLiveMigration is the migratable partition end to end: Slurm resumes vnodes
// through drover, jobs in them stream a tick a second to a listener here, drover live-migrates
// the vnodes mid-run, and every job must complete with every tick, in order, without a long gap.
func TestSlurmJobsSurviveLiveMigration(t *testing.T) {
	e := setup(t)
	res := map[string]any{}
	var migrations []migration
	maxGap := time.Duration(0)

	// 0. every vnode powered down, so the jobs below go through Slurm's resume and drover's placement
	e.powerDownAll(testenv.Config(t).Vnodes.Nodes)

	// 1. one node, 60 ticks, migrated away at tick 15 and back at tick 35
	const ticks = 60
	submitted := time.Now()
	id := e.submit("drover-e2e-1", 1, "#!/bin/bash\n"+tickScript(e.ticks.addr(), ticks))
	j := e.waitState(id, 4*time.Minute, func(j slurm.Job) bool { return j.State == slurm.JobRunning || finished(j) }, "running")
	vn := j.Nodes
	first := e.ticks.waitTick(t, id, 0, 1, 2*time.Minute)
	v, err := e.st.GetVnode(context.Background(), vn)
	if err != nil {
		t.Fatal(err)
	}
	booted, _ := e.bootTime(vn)
	res["submit_to_first_tick_s"] = first.Sub(submitted).Seconds()
	if !booted.IsZero() {
		// VM created by drover's resume hook → slurmd started in it (Slurm's record, 1 s resolution)
		// → the job's first tick; the last stretch includes slurmctld's own periodic check of
		// powering-up nodes, which drover does not control
		if node, err := e.rest.Node(context.Background(), vn); err == nil && !node.SlurmdStartTime.IsZero() {
			res["vnode_boot_to_slurmd_s"] = node.SlurmdStartTime.Sub(booted.Truncate(time.Second)).Seconds()
		}
		res["vnode_boot_to_job_s"] = first.Sub(booted).Seconds()
	}
	t.Logf("job %d on %s (%s): first tick %.1fs after submit", id, vn, v.Hypervisor, first.Sub(submitted).Seconds())

	e.ticks.waitTick(t, id, 0, 15, 2*time.Minute)
	migrations = append(migrations, e.migrate(vn))
	e.ticks.waitTick(t, id, 0, 35, 2*time.Minute)
	migrations = append(migrations, e.migrate(vn))

	_, gap := e.jobCompletes(id, 3*time.Minute, 1, ticks)
	maxGap = max(maxGap, gap)
	t.Logf("job %d: %d/%d ticks in order, largest gap %v", id, len(e.ticks.of(id, 0)), ticks, gap.Round(time.Millisecond))

	// 2. two nodes on different hypervisors, both migrated mid-step in opposite directions
	const ticks2 = 45
	id2 := e.submit("drover-e2e-2", 2, "#!/bin/bash\nsrun -N2 -n2 bash -c '"+strings.ReplaceAll(tickScript(e.ticks.addr(), ticks2), "'", `'\''`)+"'\n")
	j2 := e.waitState(id2, 4*time.Minute, func(j slurm.Job) bool { return j.State == slurm.JobRunning || finished(j) }, "running")
	names, err := j2.NodeNames()
	if err != nil || len(names) != 2 {
		t.Fatalf("job %d nodes %q: %v", id2, j2.Nodes, err)
	}
	e.ticks.waitTick(t, id2, 0, 10, 2*time.Minute)
	e.ticks.waitTick(t, id2, 1, 10, 2*time.Minute)
	hvA, hvB := e.where(names[0]), e.where(names[1])
	res["two_node_placement"] = []string{hvA, hvB}
	if hvA == hvB {
		// placement counts vnodes per host; one left running from step 1 can tip it. The point here
		// is a job whose vnodes sit on different hypervisors: move one first.
		t.Logf("vnodes of job %d both on %s: moving %s first", id2, hvA, names[1])
		migrations = append(migrations, e.migrate(names[1]))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := e.migrate(n)
			mu.Lock()
			migrations = append(migrations, m)
			mu.Unlock()
		}()
	}
	wg.Wait()
	_, gap = e.jobCompletes(id2, 3*time.Minute, 2, ticks2)
	maxGap = max(maxGap, gap)

	res["migrations"] = migrations
	res["max_gap_s"] = maxGap.Seconds()
	res["ticks_ok"] = !t.Failed()
	if maxGap >= 2*time.Second {
		t.Errorf("largest gap between ticks %v, want under 2s", maxGap)
	}
	writeResult(t, "e2e-slurm", res)
}

// powerDownAll asks Slurm to power the vnodes down (drover's suspend hook destroys their VMs) and
// waits until every one is powered down.
func (e *env) powerDownAll(nodes string) {
	e.t.Helper()
	names, err := hostlist.Expand(nodes)
	if err != nil {
		e.t.Fatal(err)
	}
	// only the nodes that are up: a power-down request for a powered-down node stays pending in
	// slurmctld and makes the next job on it fail at once ("requeue job due to failure of node")
	var up []string
	for _, n := range names {
		node, err := e.rest.Node(context.Background(), n)
		if err != nil || !node.Has(slurm.FlagPoweredDown) || node.Has(slurm.FlagPoweringDown) {
			up = append(up, n)
		}
	}
	if len(up) > 0 {
		cmd := exec.Command("scontrol", "update", "NodeName="+strings.Join(up, ","), "State=POWER_DOWN_FORCE")
		cmd.Env = append(os.Environ(), "SLURM_CONF="+testenv.Config(e.t).Slurm.Conf)
		if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(out), "already") {
			e.t.Logf("scontrol power down %s: %v %s", strings.Join(up, ","), err, out)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		down := 0
		for _, n := range names {
			node, err := e.rest.Node(context.Background(), n)
			if err == nil && node.Has(slurm.FlagPoweredDown) && !node.Has(slurm.FlagPoweringDown) {
				down++
			}
		}
		if down == len(names) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("vnodes %s not powered down within 2 minutes (%d of %d)", nodes, down, len(names))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// bootTime is when drover started the vnode's VM (its newest resume event).
func (e *env) bootTime(vnode string) (time.Time, error) {
	hist, err := e.st.VnodeHistory(context.Background(), vnode)
	if err != nil {
		return time.Time{}, err
	}
	var at time.Time
	for _, h := range hist {
		if h.Event == "resume" && h.At.After(at) {
			at = h.At
		}
	}
	return at, nil
}

func writeResult(t *testing.T, name string, res map[string]any) {
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("DROVER_E2E_OUT")
	if out == "" {
		out = filepath.Join(testenv.Config(t).Testbed.Dir, name+".json")
	}
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Println(string(b))
}
