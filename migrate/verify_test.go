package migrate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/virt"
)

// script returns a probe that takes its readings from the given functions one after another,
// repeating the last; each is passed the number of the reading, from 0.
func script(readings ...func(n int) (sample, error)) probeFunc {
	var calls atomic.Int32
	return func(context.Context) (sample, error) {
		n := int(calls.Add(1)) - 1
		return readings[min(n, len(readings)-1)](n)
	}
}

// ticking is a running guest whose CPU time grows 10 ms per reading.
func ticking(n int) (sample, error) {
	return sample{state: virt.StateRunning, cpu: time.Duration(n) * 10 * time.Millisecond}, nil
}

func stuckCPU(int) (sample, error) { return sample{state: virt.StateRunning, cpu: time.Second}, nil }

func gone(int) (sample, error) { return sample{gone: true}, nil }

func failing(int) (sample, error) { return sample{}, errors.New("rpc broke") }

func TestWatcher(t *testing.T) {
	// 60 ms of watching at 10 ms intervals: about 7 readings; the grace for console output is 40 ms
	w := watcher{dst: "hv2", verifyFor: 60 * time.Millisecond, interval: 10 * time.Millisecond, grace: 40 * time.Millisecond}
	for _, tc := range []struct {
		name    string
		probe   probeFunc
		problem string // "" when it must pass
	}{
		{"alive", script(ticking), ""},
		{"one failed reading is tolerated", script(ticking, failing, ticking), ""},
		{"destroyed after a panic", script(ticking, ticking, gone), "the domain disappeared from hv2"},
		{"crashed state", script(ticking, func(int) (sample, error) { return sample{state: virt.StateCrashed}, nil }),
			"the guest is crashed on hv2"},
		{"paused", script(func(int) (sample, error) { return sample{state: virt.StatePaused}, nil }), "the guest is paused"},
		{"hung", script(stuckCPU), "used no CPU time on hv2"},
		{"unreadable", script(failing), "could not watch the guest on hv2: rpc broke"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := w
			w.probe = tc.probe
			start := time.Now()
			v := w.run(context.Background())
			took := time.Since(start)
			if tc.problem == "" {
				if !v.Passed || v.Samples < 2 || v.CPUTime <= 0 || took < w.verifyFor {
					t.Fatalf("verification = %+v after %v; want passed after at least %v", v, took, w.verifyFor)
				}
				return
			}
			if v.Passed || !strings.Contains(v.Problem, tc.problem) {
				t.Fatalf("verification = %+v; want a failure with %q", v, tc.problem)
			}
			if took > w.verifyFor+w.grace+100*time.Millisecond {
				t.Fatalf("took %v, want at most verifyFor+grace", took)
			}
		})
	}
}

func TestProbeEvery(t *testing.T) {
	for _, tc := range []struct{ verify, want time.Duration }{
		{0, 10 * time.Millisecond}, {50 * time.Millisecond, 10 * time.Millisecond},
		{time.Second, 100 * time.Millisecond}, {2500 * time.Millisecond, probeInterval}, {time.Minute, probeInterval},
	} {
		if got := probeEvery(tc.verify); got != tc.want {
			t.Errorf("probeEvery(%v) = %v, want %v", tc.verify, got, tc.want)
		}
	}
}

func TestWatcherConsole(t *testing.T) {
	dir := t.TempDir()
	w := watcher{dst: "hv2", probe: script(ticking), verifyFor: 50 * time.Millisecond, interval: 10 * time.Millisecond,
		grace: 50 * time.Millisecond}
	appendTo := func(path, text string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
	}
	newLog := func(name string) string {
		p := filepath.Join(dir, name)
		// what the source wrote before switch-over does not count
		if err := os.WriteFile(p, []byte("HB 1 up=1\nHB 2 up=2\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("heartbeats", func(t *testing.T) {
		p := newLog("alive.log")
		w := w
		w.console = openConsole(p)
		go func() { time.Sleep(20 * time.Millisecond); appendTo(p, "HB 3 up=3\n") }()
		v := w.run(context.Background())
		if !v.Passed || v.NewLines != 1 || v.SerialLog != p {
			t.Fatalf("verification = %+v; want passed with 1 new line", v)
		}
	})
	t.Run("silent", func(t *testing.T) {
		w := w
		w.console = openConsole(newLog("silent.log"))
		v := w.run(context.Background())
		if v.Passed || !strings.Contains(v.Problem, "wrote nothing to its console") || !strings.Contains(v.Problem, `its last line before: "HB 2 up=2"`) {
			t.Fatalf("verification = %+v; want a silent-console failure", v)
		}
	})
	t.Run("panic split across reads", func(t *testing.T) {
		p := newLog("panic.log")
		w := w
		w.console = openConsole(p)
		go func() {
			appendTo(p, "[ 12.3] Kernel panic - not ")
			time.Sleep(25 * time.Millisecond)
			appendTo(p, "syncing: Attempted to kill init!\n")
		}()
		v := w.run(context.Background())
		if v.Passed || !strings.Contains(v.Problem, "kernel panic") {
			t.Fatalf("verification = %+v; want a kernel panic failure", v)
		}
	})
	t.Run("a quick check does not wait for the console", func(t *testing.T) {
		w := w
		w.console, w.quiet = openConsole(newLog("quick.log")), consoleWatch
		start := time.Now()
		v := w.run(context.Background())
		if !v.Passed || time.Since(start) > time.Second {
			t.Fatalf("verification = %+v after %v; want a pass without console lines", v, time.Since(start))
		}
	})
	t.Run("quiet guests (quiet_console: true)", func(t *testing.T) {
		m := config.Defaults().Migration
		m.QuietConsole = true
		w := w
		w.console, w.quiet = openConsole(newLog("quiet.log")), quietBelow(m)
		if v := w.run(context.Background()); !v.Passed || v.NewLines != 0 {
			t.Fatalf("verification = %+v; want a pass on vCPU progress alone", v)
		}
		p := newLog("quiet-panic.log")
		w.console = openConsole(p)
		appendTo(p, "Kernel panic - not syncing: VFS\n")
		if v := w.run(context.Background()); v.Passed || !strings.Contains(v.Problem, "kernel panic") {
			t.Fatalf("verification = %+v; want a kernel panic failure still", v)
		}
	})
	t.Run("not readable here", func(t *testing.T) {
		if c := openConsole(filepath.Join(dir, "on-another-host.log")); c != nil {
			t.Fatalf("openConsole of a missing file = %+v, want nil (not checked)", c)
		}
	})
}

// By default a watch of a second or more waits for console lines; with quiet_console none does.
func TestQuietBelow(t *testing.T) {
	m := config.Defaults().Migration
	if got := quietBelow(m); got != consoleWatch {
		t.Errorf("defaults: quiet below %v, want %v", got, consoleWatch)
	}
	m.QuietConsole = true
	if got := quietBelow(m); got < 24*time.Hour {
		t.Errorf("quiet_console: quiet below %v, want no watch to wait", got)
	}
}

func TestConsoleTruncated(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	if err := os.WriteFile(p, []byte("one\ntwo\nthree\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := openConsole(p)
	// rotated: the file is shorter than where we were, so it is read from the start (2 lines)
	if err := os.WriteFile(p, []byte("a\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.poll(); err != nil || c.lines != 2 {
		t.Fatalf("after truncation: lines %d, err %v; want 2", c.lines, err)
	}
}
