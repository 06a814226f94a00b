package migrate

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/config"
)

// locate against libvirt's test driver: every test:///default connection of a process shares one
// in-memory hypervisor holding a running domain called "test", so two "hypervisors" on it see the
// same domain twice.
func TestLocateTestDriver(t *testing.T) {
	pool := NewPool([]config.Hypervisor{{Name: "a", URI: "test:///default"}, {Name: "b", URI: "test:///default"}}, 0)
	defer pool.Close()
	e := &Executor{conns: pool, log: zerolog.Nop()}
	ctx := context.Background()

	var wg sync.WaitGroup
	for range 4 { // concurrent callers share the pool's connections
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := e.locate(ctx, "test")
			if _, err := place("test", "b", seen); !errors.Is(err, ErrRunsTwice) {
				t.Errorf("place = %v, want ErrRunsTwice", err)
			}
		}()
	}
	wg.Wait()

	seen := e.locate(ctx, "nothing-here")
	if _, err := place("nothing-here", "b", seen); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("place of a missing domain = %v, want ErrNotRunning", err)
	}
}
