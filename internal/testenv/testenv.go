// Package testenv gives integration tests the local testbed started by scripts/testbed: its
// configuration, its directory and a way to run the testbed script.
//
// Tests that need the testbed call Config. Without a testbed they are skipped, unless
// DROVER_REQUIRE_TESTBED=1 (set by `make test` and CI), when a missing testbed fails them.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/drover-hpc/drover/internal/config"
)

var (
	once    sync.Once
	loaded  *config.Config
	loadErr error
	where   string
)

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ConfigPath is the testbed's drover config: $DROVER_CONFIG, else .testbed/drover.yaml.
func ConfigPath() string {
	if p := os.Getenv("DROVER_CONFIG"); p != "" {
		return p
	}
	dir := os.Getenv("DROVER_TESTBED_DIR")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), ".testbed")
	}
	return filepath.Join(dir, "drover.yaml")
}

// Required reports whether a missing testbed must fail tests instead of skipping them.
func Required() bool { return os.Getenv("DROVER_REQUIRE_TESTBED") == "1" }

// Config returns the testbed's configuration, loaded once per test binary.
func Config(t testing.TB) *config.Config {
	t.Helper()
	once.Do(func() {
		where = ConfigPath()
		loaded, loadErr = config.Load(config.Source{Path: where, Explicit: true})
	})
	if loadErr != nil {
		if Required() {
			t.Fatalf("testbed required but not usable (%v): run scripts/testbed up", loadErr)
		}
		t.Skipf("no testbed (%v): run scripts/testbed up, or make test", loadErr)
	}
	if loaded.Testbed.Dir == "" {
		t.Fatalf("%s has no testbed.dir: it was not written by scripts/testbed", where)
	}
	return loaded
}

// Hypervisor returns the testbed hypervisor with that name, failing the test if there is none.
func Hypervisor(t testing.TB, name string) config.Hypervisor {
	t.Helper()
	h, ok := Config(t).Hypervisor(name)
	if !ok {
		t.Fatalf("testbed has no hypervisor %q", name)
	}
	return h
}

// Script runs scripts/testbed with args and returns its combined output, failing the test on error.
func Script(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(RepoRoot(), "scripts", "testbed"), args...)
	cmd.Env = append(os.Environ(), "DROVER_TESTBED_DIR="+Config(t).Testbed.Dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/testbed %v: %v\n%s", args, err, out)
	}
	return string(out)
}
