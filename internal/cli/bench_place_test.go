package cli

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func TestBenchPlace(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	code, out, errs := run(t, "--config", "/nonexistent/drover.yaml", "bench", "place", "--sizes", "50,200", "--duration", "20ms", "--seed", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if runtime.GOMAXPROCS(0) != before {
		t.Fatalf("GOMAXPROCS left at %d, was %d", runtime.GOMAXPROCS(0), before)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.Contains(lines[0], "decisions/s") {
		t.Fatalf("want a header, 4 rows and a JSON line:\n%s", out)
	}
	var res struct {
		Bench   string        `json:"bench"`
		Seed    int64         `json:"seed"`
		Results []placeResult `json:"results"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, lines[len(lines)-1])
	}
	if res.Bench != "place" || res.Seed != 3 || len(res.Results) != 4 {
		t.Fatalf("%+v", res)
	}
	for i, r := range res.Results {
		if r.Hosts != []int{50, 50, 200, 200}[i] || r.Explain != (i%2 == 1) || r.Decisions < 3 || r.Placed == 0 ||
			r.DecisionsPerSec <= 0 || r.P99Micros < r.P50Micros || r.NsPerHost <= 0 {
			t.Errorf("row %d: %+v", i, r)
		}
	}
	if !strings.Contains(errs, "generating 200 hypervisors") {
		t.Errorf("no progress on stderr: %q", errs)
	}
}

func TestBenchPlaceBadFlags(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"--sizes 0", "size 0"},
		{"--duration 0s", "positive duration"},
		{"--policy fastest --sizes 10", `unknown placement policy "fastest"`},
	} {
		args := append([]string{"--config", "/nonexistent/drover.yaml", "bench", "place"}, strings.Fields(tc.args)...)
		if code, _, errs := run(t, args...); code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", tc.args, code, errs, tc.want)
		}
	}
}
