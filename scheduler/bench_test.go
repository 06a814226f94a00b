package scheduler

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkDecide measures one decision on a prepared snapshot of n synthetic hypervisors, with
// and without explain traces. decisions/s = 1e9 / ns/op; the per-host cost is reported as ns/host.
func BenchmarkDecide(b *testing.B) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, n := range []int{100, 1000, 10000, 100000} {
		for _, explain := range []bool{false, true} {
			b.Run(fmt.Sprintf("hosts=%d/explain=%v", n, explain), func(b *testing.B) {
				syn := NewSynthetic(n, 1, now)
				p, err := NewPipeline(Config{Racks: syn.Racks, Seed: 7})
				if err != nil {
					b.Fatal(err)
				}
				s, err := p.Snapshot(syn.Hosts, now)
				if err != nil {
					b.Fatal(err)
				}
				reqs := make([]Request, 256)
				for i := range reqs {
					reqs[i] = syn.Request(i)
				}
				placed := 0
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if d := p.Decide(reqs[i%len(reqs)], s, explain); d.Host != "" {
						placed++
					}
				}
				b.StopTimer()
				if placed == 0 {
					b.Fatal("no request was placed")
				}
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				b.ReportMetric(1e9/ns, "decisions/s")
				b.ReportMetric(ns/float64(n), "ns/host")
			})
		}
	}
}

// BenchmarkSnapshot measures preparing n hosts (once per KPI refresh).
func BenchmarkSnapshot(b *testing.B) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			syn := NewSynthetic(n, 1, now)
			p, _ := NewPipeline(Config{Racks: syn.Racks})
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := p.Snapshot(syn.Hosts, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/host")
		})
	}
}
