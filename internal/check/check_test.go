package check

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	probes := []Probe{
		{Component: "fast", Target: "a", Check: func(context.Context) (Report, error) {
			return Report{Version: "1.0", RTT: 3 * time.Millisecond}, nil
		}},
		{Component: "broken", Target: "b", Check: func(context.Context) (Report, error) {
			return Report{}, errors.New("connection refused")
		}, Fix: func(err error) string { return "start it (" + err.Error() + ")" }},
		{Component: "stuck", Target: "c", Check: func(ctx context.Context) (Report, error) {
			time.Sleep(2 * time.Second) // ignores ctx: Run must not wait for it
			return Report{Version: "late"}, nil
		}},
	}
	start := time.Now()
	rs := Run(context.Background(), probes, 200*time.Millisecond)
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Run waited %s for a probe that ignores its context", el)
	}
	if len(rs) != 3 || rs[0].Component != "fast" || rs[2].Component != "stuck" {
		t.Fatalf("results out of order: %+v", rs)
	}
	if !rs[0].OK || rs[0].Version != "1.0" || rs[0].Latency != 3*time.Millisecond {
		t.Errorf("fast = %+v (latency must be the reported RTT)", rs[0])
	}
	if rs[1].OK || rs[1].Fix != "start it (connection refused)" {
		t.Errorf("broken = %+v", rs[1])
	}
	if rs[2].OK || !strings.Contains(rs[2].Err.Error(), "no answer within 200ms") {
		t.Errorf("stuck = %+v", rs[2])
	}
	if Failed(rs) != 2 {
		t.Errorf("Failed = %d, want 2", Failed(rs))
	}

	var buf bytes.Buffer
	if err := Print(&buf, rs); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"COMPONENT", "fast", "1.0", "3.0ms", "UNREACHABLE", "broken: connection refused", "fix: start it"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
