package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// While a test holds a BMC's lock, nobody else gets it; once the test ends, the lock is free.
func TestLockBMC(t *testing.T) {
	path := filepath.Join(Config(t).Testbed.Dir, "bmc-hv-locktest.lock")
	try := func() error {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close() // closing releases a lock it got
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	t.Run("held", func(t *testing.T) {
		LockBMC(t, "hv-locktest")
		if err := try(); !errors.Is(err, syscall.EWOULDBLOCK) {
			t.Fatalf("second lock while held: %v, want EWOULDBLOCK", err)
		}
	})
	if err := try(); err != nil {
		t.Fatalf("lock after the holder ended: %v", err)
	}
	_ = os.Remove(path)
}
