package migrate

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/config"
)

func TestPoolRefusals(t *testing.T) {
	// port 1 on the loopback: nothing listens, the connection is refused at once
	p := NewPool([]config.Hypervisor{{Name: "hv1", URI: "qemu+tcp://127.0.0.1:1/system"}}, 2*time.Second)
	ctx := context.Background()
	if _, err := p.Conn(ctx, "hv7"); !errors.Is(err, ErrUnknownHypervisor) || !strings.Contains(err.Error(), "configured: hv1") {
		t.Fatalf("unknown hypervisor: err = %v", err)
	}
	// concurrent callers for a hypervisor that refuses each get the error; none hangs
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.Conn(ctx, "hv1")
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "hv1: connect to qemu+tcp://127.0.0.1:1/system") {
			t.Fatalf("refused connection: err = %v", err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Conn(ctx, "hv1"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("after Close: err = %v", err)
	}
}

func TestPoolWaitsNoLongerThanCtx(t *testing.T) {
	p := NewPool([]config.Hypervisor{{Name: "hv1", URI: "qemu+tcp://127.0.0.1:1/system"}}, time.Second)
	defer p.Close()
	e := p.entries["hv1"]
	e.lock <- struct{}{} // someone else is connecting
	defer func() { <-e.lock }()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Conn(ctx, "hv1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
}
