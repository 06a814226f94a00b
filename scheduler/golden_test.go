package scheduler

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenDecision is one decision as the golden file keeps it: the chosen host and its total, and
// digests of the decision without and with explain traces (every host's verdict, every scorer's
// raw and normalised value, every total, the drop counts, the reason), so that a change of any
// bit of any score shows.
type goldenDecision struct {
	Case    string  `json:"case"`
	Host    string  `json:"host"`
	Score   float64 `json:"score,omitempty"`
	Quick   string  `json:"quick"`   // first 64 bits of the SHA-256 of the decision's JSON
	Explain string  `json:"explain"` // the same for the explained decision
}

func digest(t *testing.T, d Decision) string {
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))[:16]
}

// goldenDecisions runs the golden cases: synthetic fleets (every policy, seeded and unseeded
// tie-breaks, each placement assumed so later decisions see it) and many small random clusters
// full of ties and boundary cases.
func goldenDecisions(t *testing.T) []goldenDecision {
	var out []goldenDecision
	record := func(name string, quick, full Decision) {
		g := goldenDecision{Case: name, Host: quick.Host, Quick: digest(t, quick), Explain: digest(t, full)}
		if len(quick.Verdicts) > 0 {
			g.Score = quick.Verdicts[0].Score
		}
		out = append(out, g)
	}
	for _, policy := range PolicyNames() {
		for _, seed := range []int64{0, 7} {
			syn := NewSynthetic(1500, 11+seed, t0)
			p := mustPipeline(t, Config{Policy: policy, Racks: syn.Racks, Seed: seed})
			s, err := p.Snapshot(syn.Hosts, t0)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 60; i++ {
				req := syn.Request(i)
				quick, full := p.Decide(req, s, false), p.Decide(req, s, true)
				record(fmt.Sprintf("synthetic/%s/seed=%d/%d", policy, seed, i), quick, full)
				if quick.Host != "" {
					if err := s.Assume(quick.Host, req); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	rng := rand.New(rand.NewSource(20250302))
	for it := 0; it < 600; it++ {
		cfg := Config{Policy: PolicyNames()[rng.Intn(4)], Seed: int64(rng.Intn(3)), Racks: []Rack{{"r1", 600}, {"r2", 0}}}
		p := mustPipeline(t, cfg)
		hosts := randomHosts(rng, rng.Intn(12))
		req := randomRequest(rng, hosts)
		s, err := p.Snapshot(hosts, t0)
		if err != nil {
			t.Fatal(err)
		}
		record(fmt.Sprintf("random/%d", it), p.Decide(req, s, false), p.Decide(req, s, true))
	}
	return out
}

// TestGoldenDecisions: the decisions and every score are exactly those in
// testdata/decisions.golden.jsonl, first written by the staged pipeline (one pass per filter and
// scorer over index lists) before Decide became one fused pass. Rewrite with -update only when a
// change of the answers is intended.
func TestGoldenDecisions(t *testing.T) {
	path := filepath.Join("testdata", "decisions.golden.jsonl")
	got := goldenDecisions(t)
	if *update {
		var b strings.Builder
		for _, g := range got {
			line, err := json.Marshal(g)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(line)
			b.WriteByte('\n')
		}
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	k, placed := 0, 0
	for ; sc.Scan(); k++ {
		if k >= len(got) {
			t.Fatalf("golden file has more than the %d decisions made", len(got))
		}
		line, err := json.Marshal(got[k])
		if err != nil {
			t.Fatal(err)
		}
		if string(line) != sc.Text() {
			t.Fatalf("decision %d differs from the golden file:\n got %s\nwant %s", k, line, sc.Text())
		}
		if got[k].Host != "" {
			placed++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if k != len(got) {
		t.Fatalf("golden file has %d decisions, made %d", k, len(got))
	}
	if placed < len(got)/2 {
		t.Fatalf("only %d of %d golden decisions placed: the cases no longer exercise the scorers", placed, len(got))
	}
}
