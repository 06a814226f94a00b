package cli

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/agent"
	"github.com/drover-hpc/drover/internal/testenv"
)

// An agent started before the server registered its host waits for the row instead of exiting,
// and gives up only when told to stop.
func TestAgentWaitsForItsHost(t *testing.T) {
	_, pool := testenv.MigratedSchema(t)
	ctx := context.Background()

	done := make(chan error, 1)
	go func() { done <- waitForHost(ctx, pool, "hv-late", zerolog.New(zerolog.NewTestWriter(t))) }()
	time.Sleep(600 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("returned %v before the host was registered", err)
	default:
	}
	if _, err := pool.Exec(ctx, `INSERT INTO hypervisors (name, uri) VALUES ('hv-late', 'qemu+tcp://late/system')`); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after registration: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting 10 s after the host was registered")
	}

	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := waitForHost(cctx, pool, "hv-never", zerolog.Nop()); !errors.Is(err, agent.ErrUnknownHost) {
		t.Errorf("stopped while waiting: err = %v, want ErrUnknownHost", err)
	}
}
