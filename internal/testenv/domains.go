package testenv

import (
	"context"
	"errors"
	"testing"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/virt"
)

// ConnFunc opens (or reuses) the libvirt connection to a hypervisor; migrate.Pool.Conn is one.
type ConnFunc func(ctx context.Context, hv string) (*virt.Conn, error)

// Copies returns the hypervisors of hvs on which domain name exists, with its state. Any error
// but "no such domain" fails the test.
func Copies(t testing.TB, ctx context.Context, conn ConnFunc, hvs []config.Hypervisor, name string) map[string]virt.Domain {
	t.Helper()
	out := map[string]virt.Domain{}
	for _, h := range hvs {
		c, err := conn(ctx, h.Name)
		if err != nil {
			t.Fatalf("connect to %s: %v", h.Name, err)
		}
		d, err := c.Lookup(ctx, name)
		switch {
		case errors.Is(err, virt.ErrNoDomain):
		case err != nil:
			t.Fatalf("look up %s on %s: %v", name, h.Name, err)
		default:
			out[h.Name] = d
		}
	}
	return out
}

// RunsOnly fails the test unless domain name runs on hv and exists on no other hypervisor of hvs.
func RunsOnly(t testing.TB, ctx context.Context, conn ConnFunc, hvs []config.Hypervisor, name, hv string) {
	t.Helper()
	if c := Copies(t, ctx, conn, hvs, name); len(c) != 1 || !c[hv].Running() {
		t.Fatalf("%s: copies %+v, want one, running on %s", name, c, hv)
	}
}
