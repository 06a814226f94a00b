package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// LockBMCWait is how long LockBMC waits for another test binary to release a BMC.
const LockBMCWait = 10 * time.Minute

// LockBMC takes an exclusive lock on the testbed BMC of hypervisor hv until the test ends, so
// tests in different packages (which `go test ./...` runs in parallel) that change its sensor
// readings do not disturb each other. The lock is an flock on <testbed dir>/bmc-<hv>.lock: the
// kernel releases it if the test binary dies. Waiting is logged every 30 s and bounded by
// LockBMCWait.
func LockBMC(t testing.TB, hv string) {
	t.Helper()
	dir := Config(t).Testbed.Dir
	path := filepath.Join(dir, "bmc-"+hv+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("lock BMC %s: %v", hv, err)
	}
	start := time.Now()
	lastLog := start
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			t.Fatalf("lock BMC %s (%s): %v", hv, path, err)
		}
		if time.Since(start) > LockBMCWait {
			_ = f.Close()
			t.Fatalf("BMC %s still locked by another test after %v (%s)", hv, LockBMCWait, path)
		}
		if time.Since(lastLog) >= 30*time.Second {
			t.Logf("waiting %v for the BMC of %s, locked by another test (%s)", time.Since(start).Round(time.Second), hv, path)
			lastLog = time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	if w := time.Since(start); w > time.Second {
		t.Logf("BMC %s locked after waiting %v", hv, w.Round(time.Millisecond))
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	})
}
