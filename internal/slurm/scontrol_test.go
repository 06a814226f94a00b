package slurm_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/slurm"
)

// fakeScontrol points a Scontrol at testdata/fake-scontrol in the given mode and returns a
// function that reads back what each run received: its arguments and its SLURM_JWT/SLURM_CONF.
func fakeScontrol(t *testing.T, mode string, timeout time.Duration) (*slurm.Scontrol, func() []fakeRun) {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("testdata", "fake-scontrol"))
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "runs.log")
	t.Setenv("FAKE_SCONTROL_LOG", log)
	t.Setenv("FAKE_SCONTROL_MODE", mode)
	// drover's own environment may hold a token: scontrol must never see it
	t.Setenv("SLURM_JWT", "secret-from-environment")
	t.Setenv("SLURM_CONF", "/wrong/slurm.conf")
	s := slurm.NewScontrol(config.Slurm{Scontrol: bin, Conf: "/etc/testbed/slurm.conf", Timeout: timeout})
	return s, func() []fakeRun { return readRuns(t, log) }
}

type fakeRun struct {
	jwt, conf string
	args      []string
}

func readRuns(t *testing.T, log string) []fakeRun {
	t.Helper()
	b, err := os.ReadFile(log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var runs []fakeRun
	var cur fakeRun
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		switch {
		case line == "--":
			runs = append(runs, cur)
			cur = fakeRun{}
		case strings.HasPrefix(line, "SLURM_JWT="):
			cur.jwt = strings.TrimPrefix(line, "SLURM_JWT=")
		case strings.HasPrefix(line, "SLURM_CONF="):
			cur.conf = strings.TrimPrefix(line, "SLURM_CONF=")
		case strings.HasPrefix(line, "arg:"):
			cur.args = append(cur.args, strings.TrimPrefix(line, "arg:"))
		}
	}
	return runs
}

func TestScontrolUpdates(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(*slurm.Scontrol) error
		args []string // after "--"
	}{
		{"drain", func(s *slurm.Scontrol) error { return s.Drain(ctx, "n1", "  maintenance window ") },
			[]string{"update", "NodeName=n1", "State=DRAIN", "Reason=maintenance window"}},
		// a reason that looks like more arguments stays one argument, after Reason=
		{"drain, reason with key=value text", func(s *slurm.Scontrol) error { return s.Drain(ctx, "vn2", "moved State=RESUME") },
			[]string{"update", "NodeName=vn2", "State=DRAIN", "Reason=moved State=RESUME"}},
		{"resume", func(s *slurm.Scontrol) error { return s.Resume(ctx, "n2") },
			[]string{"update", "NodeName=n2", "State=RESUME"}},
		{"weight", func(s *slurm.Scontrol) error { return s.SetWeight(ctx, "n3", 50) },
			[]string{"update", "NodeName=n3", "Weight=50"}},
		{"addr and hostname", func(s *slurm.Scontrol) error { return s.SetAddr(ctx, "vn1", "198.18.0.11", "vn1") },
			[]string{"update", "NodeName=vn1", "NodeAddr=198.18.0.11", "NodeHostname=vn1"}},
		{"addr only", func(s *slurm.Scontrol) error { return s.SetAddr(ctx, "vn1", "fd00::b", "") },
			[]string{"update", "NodeName=vn1", "NodeAddr=fd00::b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, runs := fakeScontrol(t, "ok", 5*time.Second)
			if err := tt.call(s); err != nil {
				t.Fatalf("call: %v", err)
			}
			got := runs()
			if len(got) != 1 {
				t.Fatalf("%d runs, want 1", len(got))
			}
			if want := append([]string{"--"}, tt.args...); !slices.Equal(got[0].args, want) {
				t.Errorf("args = %q, want %q", got[0].args, want)
			}
			if got[0].jwt != "<unset>" {
				t.Errorf("scontrol saw SLURM_JWT=%q, want it unset", got[0].jwt)
			}
			if got[0].conf != "/etc/testbed/slurm.conf" {
				t.Errorf("scontrol saw SLURM_CONF=%q, want the configured one", got[0].conf)
			}
		})
	}
}

func TestScontrolRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(*slurm.Scontrol) error
	}{
		{"node with a space", func(s *slurm.Scontrol) error { return s.Resume(ctx, "n1 State=DOWN") }},
		{"node list", func(s *slurm.Scontrol) error { return s.Resume(ctx, "n[1-3]") }},
		{"node list with comma", func(s *slurm.Scontrol) error { return s.Drain(ctx, "n1,n2", "x") }},
		{"empty node", func(s *slurm.Scontrol) error { return s.SetWeight(ctx, "", 1) }},
		{"empty reason", func(s *slurm.Scontrol) error { return s.Drain(ctx, "n1", "   ") }},
		{"reason with newline", func(s *slurm.Scontrol) error { return s.Drain(ctx, "n1", "a\nState=RESUME") }},
		{"reason too long", func(s *slurm.Scontrol) error { return s.Drain(ctx, "n1", strings.Repeat("x", 257)) }},
		{"negative weight", func(s *slurm.Scontrol) error { return s.SetWeight(ctx, "n1", -1) }},
		// 4294967280 is the largest weight 22.05 takes
		{"weight too big", func(s *slurm.Scontrol) error { return s.SetWeight(ctx, "n1", 4294967281) }},
		{"addr with a space", func(s *slurm.Scontrol) error { return s.SetAddr(ctx, "vn1", "1.2.3.4 Weight=0", "") }},
		{"empty addr", func(s *slurm.Scontrol) error { return s.SetAddr(ctx, "vn1", "", "") }},
		{"bad hostname", func(s *slurm.Scontrol) error { return s.SetAddr(ctx, "vn1", "198.18.0.11", "-vn1") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, runs := fakeScontrol(t, "ok", 5*time.Second)
			if err := tt.call(s); !errors.Is(err, slurm.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
			if r := runs(); len(r) != 0 {
				t.Errorf("scontrol ran: %+v", r)
			}
		})
	}
}

func TestScontrolErrors(t *testing.T) {
	ctx := context.Background()
	s, _ := fakeScontrol(t, "notfound", 5*time.Second)
	err := s.Drain(ctx, "nope", "x")
	var cmdErr *slurm.CommandError
	if !errors.Is(err, slurm.ErrNotFound) || !errors.As(err, &cmdErr) || cmdErr.ExitCode != 1 ||
		!strings.Contains(err.Error(), "Invalid node name specified") {
		t.Errorf("Drain(nope): %v, want ErrNotFound *CommandError exit 1", err)
	}

	// 22.05 refuses to resume a node that is not drained: that is already the wanted state
	s, _ = fakeScontrol(t, "badstate", 5*time.Second)
	if err := s.Resume(ctx, "n1"); err != nil {
		t.Errorf("Resume(not drained): %v, want nil", err)
	}
	if err := s.Drain(ctx, "n1", "x"); err == nil {
		t.Error("Drain with 'Invalid node state specified' succeeded, want an error")
	}

	// refusals printed on stdout still reach the error
	s, _ = fakeScontrol(t, "nochange", 5*time.Second)
	if err := s.SetWeight(ctx, "n1", 1); err == nil || !strings.Contains(err.Error(), "No changes specified") {
		t.Errorf("SetWeight: %v, want the stdout refusal", err)
	}

	s, _ = fakeScontrol(t, "hang", 200*time.Millisecond)
	start := time.Now()
	if err := s.Resume(ctx, "n1"); !errors.Is(err, slurm.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Resume(hang): %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %v", d)
	}

	s = slurm.NewScontrol(config.Slurm{Scontrol: filepath.Join(t.TempDir(), "no-scontrol")})
	if _, err := s.Ping(ctx); err == nil || !errors.As(err, &cmdErr) {
		t.Errorf("Ping with a missing binary: %v, want *CommandError", err)
	}
}

func TestScontrolPing(t *testing.T) {
	tests := []struct {
		mode   string
		wantUp bool
		ctrls  int
	}{
		{"ok", true, 2},    // primary UP, backup DOWN
		{"down", false, 1}, // exit 1, but a result: the controller is down
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			s, runs := fakeScontrol(t, tt.mode, 5*time.Second)
			res, err := s.Ping(context.Background())
			if err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if res.Up() != tt.wantUp || len(res.Controllers) != tt.ctrls || res.Controllers[0].Host != "ctl1" ||
				res.Controllers[0].Mode != "primary" {
				t.Errorf("Ping = %+v, want up=%v with %d controllers", res, tt.wantUp, tt.ctrls)
			}
			if res.Version.String() != "22.05.8" || res.Version.Major != 22 || res.Version.Minor != 5 {
				t.Errorf("version = %+v, want 22.05.8", res.Version)
			}
			r := runs()
			if len(r) != 2 || !slices.Equal(r[0].args, []string{"--version"}) || !slices.Equal(r[1].args, []string{"--", "ping"}) {
				t.Errorf("runs = %+v", r)
			}
		})
	}
}
