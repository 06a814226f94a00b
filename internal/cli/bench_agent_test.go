package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestProcFigures(t *testing.T) {
	// burn some CPU so that utime+stime is at least one tick
	start := time.Now()
	x := 0
	for time.Since(start) < 50*time.Millisecond {
		x++
	}
	cpu, hwm, anon, err := procFigures(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if cpu <= 0 || hwm <= 0 || anon <= 0 || anon > hwm {
		t.Errorf("cpu %v, peak RSS %d KiB, anonymous %d KiB: want all positive, anonymous within the peak", cpu, hwm, anon)
	}
	if _, _, _, err := procFigures(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// The child runs its cycles, says so after each, and waits for its input to close.
func TestBenchAgentChild(t *testing.T) {
	var out bytes.Buffer
	if err := benchAgentChild(context.Background(), 2, strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"collectors loadavg,cpu,meminfo,pressure", "cycle 1 samples ", "cycle 2 samples "} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}
}
