package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "drover.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const good = `
log:
  level: debug
database:
  url: postgres://x@127.0.0.1:1/d
  max_conns: 3
  connect_timeout: 2s
hypervisors:
  - name: hv1
    uri: qemu+tcp://198.18.0.2/system
    bmc: {host: 127.0.0.1, port: 623, cipher_suite: 3}
`

func TestLoadFile(t *testing.T) {
	cfg, err := Load(Source{Path: writeFile(t, good), Explicit: true})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "debug" || cfg.Log.Format != "console" { // format from Defaults()
		t.Errorf("log = %+v", cfg.Log)
	}
	if cfg.Database.MaxConns != 3 || cfg.Database.ConnectTimeout != 2*time.Second {
		t.Errorf("database = %+v", cfg.Database)
	}
	if len(cfg.Hypervisors) != 1 || cfg.Hypervisors[0].BMC.Port != 623 {
		t.Errorf("hypervisors = %+v", cfg.Hypervisors)
	}
	if cfg.Slurm.APIVersion != "v0.0.38" {
		t.Errorf("slurm.api_version default lost: %q", cfg.Slurm.APIVersion)
	}
	if cfg.Migration.QuietConsole {
		t.Error("migration.quiet_console: default false lost")
	}
	cfg, err = Load(Source{Path: writeFile(t, good+"migration:\n  quiet_console: true\n"), Explicit: true})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Migration.QuietConsole {
		t.Error("migration.quiet_console: true in the file, false loaded")
	}
}

// File < environment < flags.
func TestPrecedence(t *testing.T) {
	path := writeFile(t, good)
	t.Setenv("DROVER_LOG_LEVEL", "warn")
	t.Setenv("DROVER_DATABASE_MAX_CONNS", "5")
	cfg, err := Load(Source{Path: path, Explicit: true})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "warn" || cfg.Database.MaxConns != 5 {
		t.Fatalf("environment did not override file: %+v %+v", cfg.Log, cfg.Database)
	}
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.String("log-level", "info", "")
	if err := fs.Parse([]string{"--log-level=error"}); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(Source{Path: path, Explicit: true, Flags: map[string]*pflag.Flag{"log.level": fs.Lookup("log-level")}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "error" {
		t.Fatalf("flag did not override environment: %q", cfg.Log.Level)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		env        map[string]string
		want       []string // all must appear in the error
	}{
		{"unknown top key", "logg:\n  level: info\n", nil, []string{`:1: unknown key "logg"`, "known here: agent, control, database"}},
		{"unknown nested key with line", good + "    bmc2: {}\n", nil, []string{`:12: unknown key "hypervisors[0].bmc2"`}},
		{"int as string", "database:\n  max_conns: many\n", nil, []string{`:2: database.max_conns: expected an integer, got "many"`}},
		{"bad duration", "slurm:\n  timeout: 5\n", nil, []string{"slurm.timeout: expected a duration"}},
		{"mapping for value", "log:\n  level: {a: 1}\n", nil, []string{"log.level: expected a single value"}},
		{"list expected", "hypervisors: hv1\n", nil, []string{"hypervisors: expected a list"}},
		{"bad YAML", "log: [\n", nil, []string{"not valid YAML"}},
		{"invalid level", "log:\n  level: loud\n", nil, []string{`log.level: "loud" is not one of`}},
		{"duplicate hypervisor", "hypervisors:\n  - {name: a, uri: x}\n  - {name: a, uri: y}\n", nil, []string{`hypervisors[1].name: "a" is listed twice`}},
		{"missing uri", "hypervisors:\n  - {name: a}\n", nil, []string{"hypervisors[0].uri: missing"}},
		{"env wrong type", "", map[string]string{"DROVER_DATABASE_MAX_CONNS": "lots"}, []string{"max_conns"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			path := writeFile(t, tc.body)
			_, err := Load(Source{Path: path, Explicit: true})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	if _, err := Load(Source{Path: missing, Explicit: true}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("explicit missing file: err = %v", err)
	}
	cfg, err := Load(Source{Path: missing})
	if err != nil {
		t.Fatalf("default path missing should fall back to defaults: %v", err)
	}
	if cfg.Log.Level != "info" {
		t.Fatalf("defaults not applied: %+v", cfg.Log)
	}
}

func TestSecret(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(p, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := Secret("", p, "x"); got != "s3cret" {
		t.Errorf("Secret from file = %q", got)
	}
	if got, _ := Secret("inline", p, "x"); got != "inline" {
		t.Errorf("inline value should win, got %q", got)
	}
	_, err := Secret("", p+"-missing", "slurm.token_file")
	if err == nil || !strings.Contains(err.Error(), "slurm.token_file") {
		t.Errorf("missing file error = %v", err)
	}
}
