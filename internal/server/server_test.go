package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/server"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/scheduler"
)

const token = "test-token-7f3a"

// start runs a server on a free loopback port until the test ends and returns it with a client.
func start(t *testing.T, pool *pgxpool.Pool, name string) (*server.Server, *server.Client, context.CancelFunc) {
	t.Helper()
	s, err := server.New(server.Config{Listen: "127.0.0.1:0", Token: token, Instance: name, Refresh: 200 * time.Millisecond},
		pool, scheduler.LeastLoaded{}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, s)
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer acancel()
	addr, err := s.Addr(actx)
	if err != nil {
		t.Fatal(err)
	}
	return s, &server.Client{URL: "http://" + addr, Token: token}, context.CancelFunc(stop)
}

// serve runs s until the test ends or stop is called (which waits for Run to return); an error
// from Run fails the test.
func serve(t *testing.T, s *server.Server) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !ok() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two servers on one database: exactly one leads; only the leader places; when it stops, the
// other takes over within a few campaign periods.
func TestLeaderElectionAndPlace(t *testing.T) {
	_, pool := testenv.MigratedSchema(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO hypervisors (name, uri, cpus, memory_mib)
	    VALUES ('hv-a', 'qemu+tcp://a/system', 8, 16384), ('hv-b', 'qemu+tcp://b/system', 8, 16384)`); err != nil {
		t.Fatal(err)
	}
	a, ca, stopA := start(t, pool, "a")
	b, cb, stopB := start(t, pool, "b")
	waitFor(t, "a leader", 10*time.Second, func() bool { return a.Leading() || b.Leading() })
	time.Sleep(1500 * time.Millisecond) // a second campaign round: still only one
	if a.Leading() == b.Leading() {
		t.Fatalf("leading: a=%v b=%v, want exactly one", a.Leading(), b.Leading())
	}
	follower, cl, cf, stopLeader := b, ca, cb, stopA
	if b.Leading() {
		follower, cl, cf, stopLeader = a, cb, ca, stopB
	}

	req := server.PlaceRequest{VNode: "vn1", JobID: 7, CPUs: 1, MemoryMiB: 512, Unreachable: []string{"hv-a"}}
	if _, err := cf.Place(ctx, req); !errors.Is(err, server.ErrNotLeader) {
		t.Fatalf("follower place: err = %v, want ErrNotLeader", err)
	}
	d, err := cl.Place(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if d.Host != "hv-b" {
		t.Fatalf("placed on %q (%s), want hv-b: hv-a was reported unreachable", d.Host, d.Reason)
	}

	stopLeader()
	waitFor(t, "the follower to take over", 10*time.Second, follower.Leading)
	if d, err := cf.Place(ctx, server.PlaceRequest{VNode: "vn2", CPUs: 1, MemoryMiB: 512}); err != nil || d.Host == "" {
		t.Fatalf("new leader place: %+v, %v", d, err)
	}
}

// The API refuses requests without the token, and bad bodies with what was wrong.
func TestAPIRefusesBadRequests(t *testing.T) {
	_, pool := testenv.MigratedSchema(t)
	s, c, _ := start(t, pool, "solo")
	waitFor(t, "leadership", 10*time.Second, s.Leading)
	ctx := context.Background()

	bad := &server.Client{URL: c.URL, Token: "wrong"}
	if _, err := bad.Status(ctx); err == nil || !strings.Contains(err.Error(), "bearer token") {
		t.Errorf("wrong token: err = %v, want a bearer token complaint", err)
	}
	resp, err := http.Get(c.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()

	for _, tc := range []struct {
		body, want string
	}{
		{`{"vnode":"vn1","cpus":1,"memory_mib":512,"colour":"red"}`, "unknown field"},
		{`{"vnode":"vn1'; DROP TABLE vnodes;--","cpus":1,"memory_mib":512}`, "is not a node name"},
		{`{"vnode":"vn1","cpus":0,"memory_mib":512}`, "cpus must be positive"},
		{`{"vnode":"vn1","cpus":1,"memory_mib":512} {}`, "more than one object"},
		{`[1,2]`, "bad JSON body"},
	} {
		req, _ := http.NewRequest(http.MethodPost, c.URL+"/v1/place", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var msg bytes.Buffer
		_, _ = msg.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg.String(), tc.want) {
			t.Errorf("body %s: %d %s, want 400 containing %q", tc.body, resp.StatusCode, msg.String(), tc.want)
		}
	}
	if _, err := server.New(server.Config{Listen: "127.0.0.1:0"}, pool, scheduler.LeastLoaded{}, zerolog.Nop()); err == nil ||
		!strings.Contains(err.Error(), "token") {
		t.Errorf("New without a token: err = %v, want a refusal naming the token", err)
	}
}

type fakeProber []server.Probe

func (f fakeProber) Probe(context.Context) []server.Probe { return f }

// The libvirt probe's capacities land in the hypervisors table and an unreachable host is marked
// so in the view, whatever its KPIs say.
func TestProbeRecordsCapacity(t *testing.T) {
	_, pool := testenv.MigratedSchema(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO hypervisors (name, uri) VALUES ('hv-a', 'qemu+tcp://a/system'), ('hv-b', 'qemu+tcp://b/system')`); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(server.Config{Listen: "127.0.0.1:0", Token: token, Refresh: 100 * time.Millisecond,
		Prober: fakeProber{{Name: "hv-a", CPUs: 8, MemoryMiB: 16384}, {Name: "hv-b", Err: errors.New("connection refused")}}},
		pool, scheduler.LeastLoaded{}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s)
	var cpus, mib *int64
	waitFor(t, "hv-a's capacity", 10*time.Second, func() bool {
		_ = pool.QueryRow(ctx, `SELECT cpus, memory_mib FROM hypervisors WHERE name = 'hv-a'`).Scan(&cpus, &mib)
		return cpus != nil
	})
	if *cpus != 8 || *mib != 16384 {
		t.Errorf("hv-a capacity = %d CPUs %d MiB, want 8 and 16384", *cpus, *mib)
	}
	var bcpus *int64
	if err := pool.QueryRow(ctx, `SELECT cpus FROM hypervisors WHERE name = 'hv-b'`).Scan(&bcpus); err != nil || bcpus != nil {
		t.Errorf("hv-b (unreachable) capacity = %v, %v; want NULL", bcpus, err)
	}
	addr, _ := s.Addr(ctx)
	var hosts []scheduler.Host
	waitFor(t, "the view", 10*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/hosts", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&hosts) == nil && len(hosts) == 2
	})
	if !hosts[0].Reachable || hosts[1].Reachable || hosts[0].CPUs != 8 {
		t.Errorf("view = %+v", hosts)
	}
}

// The leader's audit records a vnode whose VM no hypervisor lists, at two probes in a row, as
// failed with the reason; a vnode some hypervisor lists is left alone, and so is every vnode
// while a hypervisor cannot be asked.
func TestProbeAuditsVanishedVMs(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		probes fakeProber
		ghost  string // the ghost's state after the probes
	}{
		{"every hypervisor answers", fakeProber{{Name: "hv-a", CPUs: 8, MemoryMiB: 16384, Active: []string{"vn-live"}},
			{Name: "hv-b", CPUs: 8, MemoryMiB: 16384, Active: []string{}}}, "failed"},
		{"one cannot be asked", fakeProber{{Name: "hv-a", CPUs: 8, MemoryMiB: 16384, Active: []string{"vn-live"}},
			{Name: "hv-b", Err: errors.New("connection refused")}}, "running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, pool := testenv.MigratedSchema(t)
			st := store.New(pool)
			if _, err := pool.Exec(ctx, `INSERT INTO hypervisors (name, uri) VALUES ('hv-a', 'qemu+tcp://a/system'), ('hv-b', 'qemu+tcp://b/system')`); err != nil {
				t.Fatal(err)
			}
			for _, vn := range []string{"vn-live", "vn-ghost"} {
				hv := "hv-a"
				if err := st.SetVnodeState(ctx, vn, "running", "", &hv); err != nil {
					t.Fatal(err)
				}
			}
			s, err := server.New(server.Config{Listen: "127.0.0.1:0", Token: token, Refresh: 50 * time.Millisecond,
				ProbeInterval: 50 * time.Millisecond, Prober: tc.probes},
				pool, scheduler.LeastLoaded{}, zerolog.New(zerolog.NewTestWriter(t)))
			if err != nil {
				t.Fatal(err)
			}
			serve(t, s)
			waitFor(t, "leadership", 10*time.Second, s.Leading)
			if tc.ghost == "failed" {
				waitFor(t, "the ghost recorded failed, with its event", 10*time.Second, func() bool {
					var n int
					_ = pool.QueryRow(ctx, `SELECT count(*) FROM vnode_events WHERE vnode = 'vn-ghost' AND event = 'vanished'`).Scan(&n)
					return n > 0
				})
			} else {
				time.Sleep(500 * time.Millisecond) // ten probes
			}
			g, err := st.GetVnode(ctx, "vn-ghost")
			if err != nil || g.State != tc.ghost {
				t.Fatalf("ghost = %+v, %v; want %s", g, err, tc.ghost)
			}
			if tc.ghost == "failed" && g.Reason != "its VM is on none of hv-a, hv-b at two probes in a row (the database said running on hv-a)" {
				t.Errorf("ghost's reason %q", g.Reason)
			}
			if v, err := st.GetVnode(ctx, "vn-live"); err != nil || v.State != "running" || v.Hypervisor != "hv-a" {
				t.Errorf("live vnode = %+v, %v; want running on hv-a", v, err)
			}
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM vnode_events WHERE vnode = 'vn-ghost' AND event = 'vanished'`).Scan(&n); err != nil ||
				(n == 1) != (tc.ghost == "failed") {
				t.Errorf("vanished events: %d, %v", n, err)
			}
		})
	}
}
