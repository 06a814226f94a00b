package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAgentDefaults(t *testing.T) {
	cfg, err := Load(Source{Path: writeFile(t, "")})
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Agent
	if a.HealthInterval != time.Second || a.Interval != 10*time.Second || a.SpoolDir != "/var/lib/drover/spool" {
		t.Errorf("agent defaults = %+v", a)
	}
	if a.PartitionsAheadDays < 1 || a.RetentionDays < 1 || a.BatchMaxSamples < 1 || a.MemoryMaxSamples < 1 {
		t.Errorf("agent defaults not positive: %+v", a)
	}
	if cfg.Health != (Health{}) {
		t.Errorf("health defaults = %+v, want zero (the health package's defaults)", cfg.Health)
	}
}

func TestAgentFileAndEnv(t *testing.T) {
	th := filepath.Join(t.TempDir(), "thresholds.conf")
	if err := os.WriteFile(th, []byte("CPU Temp 10 85\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, `
database:
  url: postgres://drover@127.0.0.1:1/d
  password_file: /etc/drover/db.pass
agent:
  host: hv1
  health_interval: 500ms
  interval: 5s
  spool_dir: /tmp/spool
  node_exporter_url: http://127.0.0.1:9100/metrics
  database:
    url: postgres://drover_agent@127.0.0.1:1/d
    password_file: /etc/drover/agent.pass
health:
  thresholds_file: `+th+`
  horizon: 10m
  min_confidence: 0.9
  hysteresis: 1.5
`)
	t.Setenv("DROVER_AGENT_INTERVAL", "7s")
	t.Setenv("DROVER_HEALTH_WINDOW", "3m")
	cfg, err := Load(Source{Path: path, Explicit: true})
	if err != nil {
		t.Fatal(err)
	}
	a, h := cfg.Agent, cfg.Health
	if a.Host != "hv1" || a.HealthInterval != 500*time.Millisecond || a.Interval != 7*time.Second || a.SpoolDir != "/tmp/spool" {
		t.Errorf("agent = %+v (interval from the environment)", a)
	}
	if h.ThresholdsFile != th || h.Horizon != 10*time.Minute || h.MinConfidence != 0.9 || h.Hysteresis != 1.5 || h.Window != 3*time.Minute {
		t.Errorf("health = %+v", h)
	}
	db := cfg.AgentDatabase()
	if db.URL != "postgres://drover_agent@127.0.0.1:1/d" || db.PasswordFile != "/etc/drover/agent.pass" || db.MaxConns != 8 {
		t.Errorf("agent database = %+v, want the agent's URL and password file with the main section's pool settings", db)
	}
	cfg.Agent.Database = AgentDatabase{}
	if db := cfg.AgentDatabase(); db.URL != "postgres://drover@127.0.0.1:1/d" || db.PasswordFile != "/etc/drover/db.pass" {
		t.Errorf("without agent.database: %+v, want the main section", db)
	}
}

// Bad agent and health settings name the file, the line and the key.
func TestAgentErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "thresholds.cnof")
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"negative interval", "agent:\n  host: hv1\n  interval: -5s\n", []string{":3: agent.interval: must be positive, got -5s"}},
		{"zero health interval", "agent:\n  health_interval: 0s\n", []string{":2: agent.health_interval: must be positive"}},
		{"dirty rates too often", "agent:\n  dirty_rate_every: 500ms\n", []string{":2: agent.dirty_rate_every: must be at least 1s", "got 500ms"}},
		{"unknown key", "agent:\n  intervall: 5s\n", []string{`:2: unknown key "agent.intervall"`, "known here: batch_max_samples"}},
		{"unknown health key", "health:\n  treshold_file: x\n", []string{`:2: unknown key "health.treshold_file"`, "thresholds_file"}},
		{"typo'd thresholds file", "log:\n  level: info\nhealth:\n  thresholds_file: " + missing + "\n", []string{":4: health.thresholds_file: stat " + missing + ": no such file or directory"}},
		{"interval not a duration", "agent:\n  interval: 10\n", []string{":2: agent.interval: expected a duration"}},
		{"relative spool", "agent:\n  spool_dir: spool\n", []string{`:2: agent.spool_dir: "spool" is not an absolute directory path`}},
		{"bad node_exporter url", "agent:\n  node_exporter_url: localhost:9100\n", []string{":2: agent.node_exporter_url:", "not an http(s) URL"}},
		{"confidence above 1", "health:\n  min_confidence: 1.5\n", []string{":2: health.min_confidence: 1.5 is not in [0, 1]"}},
		{"negative horizon", "health:\n  horizon: -1m\n", []string{":2: health.horizon: must not be negative"}},
		{"level 1", "health:\n  level: 1\n", []string{":2: health.level: 1 is not in (0, 1)"}},
		{"min above max samples", "health:\n  max_samples: 10\n  min_samples: 20\n", []string{":3: health.min_samples: 20 is more than max_samples 10"}},
		{"several at once", "agent:\n  interval: -1s\n  retention_days: 0\n", []string{":2: agent.interval", ":3: agent.retention_days: must be at least 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.body)
			_, err := Load(Source{Path: path, Explicit: true})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// A bad value from the environment names the key, without a line.
func TestAgentEnvError(t *testing.T) {
	t.Setenv("DROVER_AGENT_HEALTH_INTERVAL", "-1s")
	_, err := Load(Source{Path: writeFile(t, "log:\n  level: info\n"), Explicit: true})
	if err == nil || !strings.Contains(err.Error(), "agent.health_interval: must be positive, got -1s") {
		t.Fatalf("err = %v", err)
	}
}
