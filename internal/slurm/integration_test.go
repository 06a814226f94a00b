package slurm_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/slurm"
	"github.com/drover-hpc/drover/internal/testenv"
)

// These tests run against the Slurm of the local testbed (scripts/testbed up net slurm): n1..n3
// in partition batch, the vnodes vn1..vnN (State=CLOUD, booted on demand) in partition migratable. They put back what they change: jobs are cancelled,
// weights restored, drained nodes resumed.

// testbed returns the testbed's Slurm config and clients on it.
func testbed(t *testing.T) (config.Slurm, *slurm.REST, *slurm.Scontrol) {
	t.Helper()
	cfg := testenv.Config(t).Slurm
	c, err := slurm.NewREST(cfg)
	if err != nil {
		t.Fatalf("NewREST on the testbed: %v", err)
	}
	return cfg, c, slurm.NewScontrol(cfg)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitJob polls job id until ok says so, for at most 20 s.
func waitJob(t *testing.T, c slurm.Client, id uint32, what string, ok func(slurm.Job) bool) slurm.Job {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		j, err := c.Job(context.Background(), id)
		if err == nil && ok(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d never became %s (last: %+v, %v)", id, what, j, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitNode polls node name until ok says so, for at most 10 s.
func waitNode(t *testing.T, c slurm.Client, name, what string, ok func(slurm.Node) bool) slurm.Node {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := c.Node(context.Background(), name)
		if err == nil && ok(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s never became %s (last: %+v, %v)", name, what, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// submit submits req and cancels the job when the test ends.
func submit(t *testing.T, c slurm.Client, req slurm.SubmitRequest) slurm.SubmitResult {
	t.Helper()
	res, err := c.Submit(ctxFor(t), req)
	if err != nil {
		t.Fatalf("Submit(%s): %v", req.Name, err)
	}
	t.Cleanup(func() {
		if err := c.Cancel(context.Background(), res.JobID); err != nil && !errors.Is(err, slurm.ErrNotFound) {
			t.Errorf("cleanup: cancel job %d: %v", res.JobID, err)
		}
	})
	return res
}

func sleepJob(name, partition string) slurm.SubmitRequest {
	return slurm.SubmitRequest{
		Name: name, Partition: partition, Script: "#!/bin/sh\nsleep 120\n",
		WorkDir: "/tmp", StdOut: "/dev/null", StdErr: "/dev/null", TimeLimit: 5 * time.Minute,
	}
}

func TestIntegrationPing(t *testing.T) {
	_, c, sc := testbed(t)
	ctx := ctxFor(t)
	for name, p := range map[string]slurm.ControllerProber{"rest": c, "scontrol": sc} {
		res, err := p.Ping(ctx)
		if err != nil {
			t.Fatalf("%s Ping: %v", name, err)
		}
		if !res.Up() || res.Version.Major != 22 || res.Version.Minor != 5 {
			t.Errorf("%s Ping = %+v, want slurmctld up, Slurm 22.05", name, res)
		}
	}
}

func TestIntegrationNodesAndPartitions(t *testing.T) {
	_, c, _ := testbed(t)
	ctx := ctxFor(t)
	nodes, err := c.Nodes(ctx)
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	for _, want := range []string{"n1", "n2", "n3"} {
		if !slices.Contains(names, want) {
			t.Errorf("Nodes = %v, missing %s", names, want)
		}
	}
	n1, err := c.Node(ctx, "n1")
	if err != nil {
		t.Fatalf("Node(n1): %v", err)
	}
	if n1.Address != "127.0.0.1" || n1.CPUs < 1 || n1.RealMemory <= 0 || !n1.Responding() ||
		!slices.Equal(n1.Partitions, []string{"batch"}) || n1.SlurmdVersion != "22.05.8" {
		t.Errorf("Node(n1) = %+v", n1)
	}
	if _, err := c.Node(ctx, "no-such-node"); !errors.Is(err, slurm.ErrNotFound) {
		t.Errorf("Node(no-such-node): %v, want ErrNotFound", err)
	}

	parts, err := c.Partitions(ctx)
	if err != nil {
		t.Fatalf("Partitions: %v", err)
	}
	got := map[string]slurm.Partition{}
	for _, p := range parts {
		got[p.Name] = p
	}
	for _, tt := range []struct {
		name        string
		def         bool
		first, last string
	}{{"batch", true, "n1", "n3"}, {"migratable", false, "vn1", "vn2"}} {
		p, ok := got[tt.name]
		if !ok {
			t.Errorf("no partition %s in %v", tt.name, parts)
			continue
		}
		members, err := p.NodeNames()
		if err != nil || p.Default != tt.def || p.State != "UP" || !slices.Contains(members, tt.first) || !slices.Contains(members, tt.last) {
			t.Errorf("partition %s = %+v (nodes %v, %v), want default=%v with %s..%s", tt.name, p, members, err, tt.def, tt.first, tt.last)
		}
	}
}

func TestIntegrationJobs(t *testing.T) {
	_, c, _ := testbed(t)
	ctx := ctxFor(t)

	// plain: starts within a couple of seconds, shows in Jobs, cancels
	plain := submit(t, c, sleepJob("drover-it-plain", "batch"))
	if len(plain.Warnings) != 0 {
		t.Errorf("plain submit warnings: %v", plain.Warnings)
	}
	j := waitJob(t, c, plain.JobID, "RUNNING", func(j slurm.Job) bool { return j.State == slurm.JobRunning })
	if j.Name != "drover-it-plain" || j.Partition != "batch" || j.User != "root" || j.BatchHost == "" ||
		j.TimeLimit != 5*time.Minute || j.StartTime.IsZero() {
		t.Errorf("running job = %+v", j)
	}
	jobs, err := c.Jobs(ctx)
	if err != nil {
		t.Fatalf("Jobs: %v", err)
	}
	if !slices.ContainsFunc(jobs, func(j slurm.Job) bool { return j.ID == plain.JobID }) {
		t.Errorf("Jobs does not list job %d", plain.JobID)
	}
	if err := c.Cancel(ctx, plain.JobID); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	waitJob(t, c, plain.JobID, "CANCELLED", func(j slurm.Job) bool { return j.State == slurm.JobCancelled })

	// held: slurmrestd answers 200 with error 2042 and a job id, which is a success
	held := submit(t, c, func() slurm.SubmitRequest {
		r := sleepJob("drover-it-held", "batch") // not migratable: releasing it would boot a vnode
		r.Hold = true
		return r
	}())
	if !slices.ContainsFunc(held.Warnings, func(e slurm.SlurmError) bool { return e.Code == slurm.CodeJobHeld }) {
		t.Errorf("held submit warnings = %v, want 2042", held.Warnings)
	}
	j, err = c.Job(ctx, held.JobID)
	if err != nil || !j.Held() || j.State != slurm.JobPending {
		t.Fatalf("held job = %+v, %v; want pending and held", j, err)
	}
	if err := c.Release(ctx, held.JobID); err != nil {
		t.Fatalf("Release: %v", err)
	}
	waitJob(t, c, held.JobID, "RUNNING after release", func(j slurm.Job) bool { return j.State == slurm.JobRunning })

	if _, err := c.Job(ctx, 4000000000); !errors.Is(err, slurm.ErrNotFound) {
		t.Errorf("Job(unknown): %v, want ErrNotFound", err)
	}
}

// TestIntegrationHoldOnDrainedNode pins a job to a drained node, so it stays pending while Hold
// and Release are observed, then resumes the node and watches the job start there.
func TestIntegrationHoldOnDrainedNode(t *testing.T) {
	_, c, sc := testbed(t)
	ctx := ctxFor(t)
	const node = "n3"
	before, err := c.Node(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	if before.Drained() {
		t.Skipf("%s is drained by someone else (%q): not touching it", node, before.Reason)
	}
	t.Cleanup(func() {
		if err := sc.Resume(context.Background(), node); err != nil {
			t.Errorf("cleanup: resume %s: %v", node, err)
		}
	})
	if err := sc.Drain(ctx, node, "drover integration test"); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	waitNode(t, c, node, "drained", func(n slurm.Node) bool {
		return n.Drained() && n.Reason == "drover integration test" && n.ReasonSetBy == "root"
	})

	req := sleepJob("drover-it-pinned", "batch")
	req.NodeList = node
	res := submit(t, c, req)
	j := waitJob(t, c, res.JobID, "pending on the drained node", func(j slurm.Job) bool {
		return j.State == slurm.JobPending && j.Priority > 0
	})
	if j.RequiredNodes != node {
		t.Errorf("pinned job requires %q, want %s", j.RequiredNodes, node)
	}

	if err := c.Hold(ctx, res.JobID); err != nil {
		t.Fatalf("Hold: %v", err)
	}
	waitJob(t, c, res.JobID, "held", slurm.Job.Held)
	if err := c.Release(ctx, res.JobID); err != nil {
		t.Fatalf("Release: %v", err)
	}
	waitJob(t, c, res.JobID, "released", func(j slurm.Job) bool { return !j.Held() && j.State == slurm.JobPending })

	if err := sc.Resume(ctx, node); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	waitNode(t, c, node, "resumed", func(n slurm.Node) bool { return !n.Drained() })
	j = waitJob(t, c, res.JobID, "running on "+node, func(j slurm.Job) bool { return j.State == slurm.JobRunning })
	if j.Nodes != node {
		t.Errorf("job runs on %q, want %s", j.Nodes, node)
	}
	// resuming a node that is not drained is not an error
	if err := sc.Resume(ctx, node); err != nil {
		t.Errorf("second Resume: %v", err)
	}
}

func TestIntegrationNodeUpdates(t *testing.T) {
	_, c, sc := testbed(t)
	ctx := ctxFor(t)
	const node = "n2"
	before, err := c.Node(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sc.SetWeight(context.Background(), node, before.Weight); err != nil {
			t.Errorf("cleanup: weight: %v", err)
		}
	})
	// a weight nobody else uses, so the change is visibly ours
	want := before.Weight + 37
	if err := sc.SetWeight(ctx, node, want); err != nil {
		t.Fatalf("SetWeight: %v", err)
	}
	waitNode(t, c, node, fmt.Sprintf("weight %d", want), func(n slurm.Node) bool { return n.Weight == want })

	// the same address and hostname again: exercises SetAddr without moving the node
	if err := sc.SetAddr(ctx, node, before.Address, before.Hostname); err != nil {
		t.Fatalf("SetAddr: %v", err)
	}
	if n, err := c.Node(ctx, node); err != nil || n.Address != before.Address || n.Hostname != before.Hostname {
		t.Errorf("after SetAddr: %+v, %v", n, err)
	}

	if err := sc.Drain(ctx, "no-such-node", "x"); !errors.Is(err, slurm.ErrNotFound) {
		t.Errorf("Drain(no-such-node): %v, want ErrNotFound", err)
	}
}

func TestIntegrationWrongToken(t *testing.T) {
	cfg, good, _ := testbed(t)
	ctx := ctxFor(t)
	// a real token with its signature replaced: well-formed, unexpired, signed with another key
	tok, err := config.Secret(cfg.Token, cfg.TokenFile, "slurm.token_file")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("testbed token has %d parts", len(parts))
	}
	forgedSig := base64.RawURLEncoding.EncodeToString([]byte("signed with some other key, 32b!"))
	enc := base64.RawURLEncoding.EncodeToString
	expired := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc([]byte(fmt.Sprintf(`{"exp":%d,"iat":%d,"sun":"root"}`, time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()))) +
		"." + parts[2]

	for name, token := range map[string]string{
		"foreign signature": parts[0] + "." + parts[1] + "." + forgedSig,
		"expired":           expired,
	} {
		t.Run(name, func(t *testing.T) {
			bad := cfg
			bad.Token, bad.TokenFile = token, ""
			c, err := slurm.NewREST(bad)
			if err != nil {
				t.Fatalf("NewREST: %v", err)
			}
			_, err = c.Nodes(ctx)
			if !errors.Is(err, slurm.ErrUnauthorized) {
				t.Fatalf("Nodes with a %s token: %v, want ErrUnauthorized", name, err)
			}
			if !strings.Contains(err.Error(), "scontrol token") {
				t.Errorf("error does not say how to get a token: %v", err)
			}
			if strings.Contains(err.Error(), parts[1]) || strings.Contains(err.Error(), parts[2]) {
				t.Errorf("error shows the token: %v", err)
			}
		})
	}
	// the good token still works afterwards
	if _, err := good.Ping(ctx); err != nil {
		t.Errorf("Ping with the testbed token: %v", err)
	}
}

// A job's comment (where users put drover hints) and time limit go in with the submission and
// come back in the job record.
func TestIntegrationJobComment(t *testing.T) {
	_, c, _ := testbed(t)
	ctx := ctxFor(t)
	req := sleepJob("drover-it-comment", "batch")
	req.Hold, req.Comment = true, "nightly drover:spread"
	res, err := c.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Cancel(context.Background(), res.JobID) })
	j, err := c.Job(ctx, res.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Comment != "nightly drover:spread" || j.TimeLimit != 5*time.Minute {
		t.Errorf("job %d: comment %q, time limit %v; want the submitted ones", res.JobID, j.Comment, j.TimeLimit)
	}
}
