package scheduler

import (
	"math/rand"
	"strings"
	"testing"
)

func TestLeastLoaded(t *testing.T) {
	req := Request{VNode: "vn1", MemoryMiB: 512}
	for _, tc := range []struct {
		name      string
		hosts     []Host
		want      string
		wantInWhy string
	}{
		{"fewest vnodes wins", []Host{
			{Name: "hv1", Reachable: true, VNodes: 2, FreeMemoryMiB: -1},
			{Name: "hv2", Reachable: true, VNodes: 1, FreeMemoryMiB: -1}, // score 100/2 = 50 > 100/3
		}, "hv2", "1 vnodes running"},
		{"tie broken by name", []Host{
			{Name: "hv2", Reachable: true, FreeMemoryMiB: -1},
			{Name: "hv1", Reachable: true, FreeMemoryMiB: -1},
		}, "hv1", "least loaded"},
		{"unreachable dropped", []Host{
			{Name: "hv1", Reachable: false},
			{Name: "hv2", Reachable: true, VNodes: 5, FreeMemoryMiB: -1},
		}, "hv2", ""},
		{"draining dropped", []Host{
			{Name: "hv1", Reachable: true, State: "draining", FreeMemoryMiB: -1},
			{Name: "hv2", Reachable: true, VNodes: 3, FreeMemoryMiB: -1},
		}, "hv2", ""},
		{"memory filter", []Host{
			{Name: "hv1", Reachable: true, FreeMemoryMiB: 256}, // 256 < 512: dropped
			{Name: "hv2", Reachable: true, VNodes: 9, FreeMemoryMiB: 4096},
		}, "hv2", ""},
		{"nothing fits", []Host{
			{Name: "hv1", Reachable: false},
			{Name: "hv2", Reachable: true, FreeMemoryMiB: 100},
		}, "", "hv1: unreachable (libvirt did not answer); hv2: no-memory (100 MiB free, 512 MiB needed)"},
		{"no hosts", nil, "", "no hypervisors are configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := LeastLoaded{}.Place(req, tc.hosts)
			if d.Host != tc.want {
				t.Fatalf("host = %q, want %q (%+v)", d.Host, tc.want, d)
			}
			if !strings.Contains(d.Reason, tc.wantInWhy) {
				t.Fatalf("reason %q lacks %q", d.Reason, tc.wantInWhy)
			}
			if len(d.Verdicts) != len(tc.hosts) {
				t.Fatalf("verdicts for %d of %d hosts", len(d.Verdicts), len(tc.hosts))
			}
		})
	}
}

// Property: never an infeasible host; the same hosts in any order give the same answer.
func TestLeastLoadedProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 500; i++ {
		n := rng.Intn(6)
		hosts := make([]Host, n)
		for j := range hosts {
			hosts[j] = Host{Name: string(rune('a' + j)), Reachable: rng.Intn(4) > 0, VNodes: rng.Intn(4),
				FreeMemoryMiB: int64(rng.Intn(2048)) - 1}
			if rng.Intn(5) == 0 {
				hosts[j].State = "draining"
			}
		}
		req := Request{VNode: "vn", MemoryMiB: 512}
		d := LeastLoaded{}.Place(req, hosts)
		shuffled := append([]Host(nil), hosts...)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		if d2 := (LeastLoaded{}).Place(req, shuffled); d2.Host != d.Host {
			t.Fatalf("order changed the answer: %q vs %q for %+v", d.Host, d2.Host, hosts)
		}
		for _, h := range hosts {
			if h.Name != d.Host {
				continue
			}
			if !h.Reachable || (h.State != "" && h.State != "active") || (h.FreeMemoryMiB >= 0 && h.FreeMemoryMiB < 512) {
				t.Fatalf("placed on infeasible host %+v", h)
			}
		}
	}
}
