package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// agentConfigFile writes a config without hypervisors (so no BMC, no libvirt) and the given
// health section.
func agentConfigFile(t *testing.T, health string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "drover.yaml")
	if err := os.WriteFile(p, []byte("log:\n  level: error\n"+health), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// --once reads this machine's procfs once and prints the table, without a database.
func TestAgentOnce(t *testing.T) {
	code, out, errb := run(t, "--config", agentConfigFile(t, ""), "agent", "--once", "--host", "nohv")
	if code != 0 {
		t.Fatalf("code %d\nstdout %s\nstderr %s", code, out, errb)
	}
	for _, want := range []string{"COLLECTOR", "HEALTH", "loadavg", "load1", "meminfo", "memory_total_bytes"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// A bad thresholds file stops the agent at start, naming file and line and what to do.
func TestAgentBadThresholds(t *testing.T) {
	th := filepath.Join(t.TempDir(), "thresholds.conf")
	if err := os.WriteFile(th, []byte("CPU Temp 10 85\nSystem Temp 5 10 95 90\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errb := run(t, "--config", agentConfigFile(t, "health:\n  thresholds_file: "+th+"\n"), "agent", "--once", "--host", "nohv")
	if code == 0 || !strings.Contains(errb, th+":2:") || !strings.Contains(errb, "health.thresholds_file") {
		t.Fatalf("code %d, stderr %q: want an error naming %s:2 and the setting", code, errb, th)
	}
}
