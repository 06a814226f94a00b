package virt

import (
	"context"
	"errors"
	"strings"
	"testing"

	"libvirt.org/go/libvirt"
)

func TestStateReason(t *testing.T) {
	tests := []struct {
		name      string
		st        libvirt.DomainState
		reason    int
		postCopy  bool
		migrating bool
	}{
		{"paused by the user", libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_USER), false, false},
		// the source at switch-over, and the destination while it receives
		{"paused by migration", libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_MIGRATION), false, true},
		{"paused starting up", libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_STARTING_UP), false, true},
		{"paused in post-copy", libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_POSTCOPY), true, false},
		{"paused, post-copy failed", libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_POSTCOPY_FAILED), true, false},
		{"running, booted", libvirt.DOMAIN_RUNNING, int(libvirt.DOMAIN_RUNNING_BOOTED), false, false},
		{"running, migrated in", libvirt.DOMAIN_RUNNING, int(libvirt.DOMAIN_RUNNING_MIGRATED), false, false},
		{"running in post-copy", libvirt.DOMAIN_RUNNING, int(libvirt.DOMAIN_RUNNING_POSTCOPY), true, false},
		{"running, post-copy failed", libvirt.DOMAIN_RUNNING, int(libvirt.DOMAIN_RUNNING_POSTCOPY_FAILED), true, false},
		// reasons are per state: the number of "paused in post-copy" means nothing for a shut-off domain
		{"shut off", libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_PAUSED_POSTCOPY), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pc, mig := stateReason(tc.st, tc.reason)
			if pc != tc.postCopy || mig != tc.migrating {
				t.Errorf("stateReason(%d, %d) = post-copy %v, migrating %v; want %v, %v", tc.st, tc.reason, pc, mig, tc.postCopy, tc.migrating)
			}
		})
	}
}

// DomainStatus, Resume and AbortJob on the test driver: a domain paused by hand is neither in
// post-copy nor paused by a migration, and has no job to abort.
func TestDomainStatusResumeAbort(t *testing.T) {
	c := testConn(t)
	ctx := context.Background()
	name := uniqueName("ops")
	if _, err := c.Define(ctx, testDomainXML(name, 64, 1)); err != nil {
		t.Fatalf("Define: %v", err)
	}
	t.Cleanup(func() { _ = c.Destroy(ctx, name); _ = c.Undefine(ctx, name) })

	s, err := c.DomainStatus(ctx, name)
	if want := (DomainStatus{State: StateShutOff, Persistent: true}); err != nil || s != want {
		t.Fatalf("DomainStatus of a defined domain = %+v, %v; want %+v", s, err, want)
	}
	if err := c.Start(ctx, name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	s, err = c.DomainStatus(ctx, name)
	if want := (DomainStatus{State: StateRunning, Active: true, Persistent: true}); err != nil || s != want {
		t.Fatalf("DomainStatus of a running domain = %+v, %v; want %+v", s, err, want)
	}

	err = c.withDomain(ctx, "suspend", name, func(d *libvirt.Domain) error { return d.Suspend() })
	if err != nil {
		t.Fatalf("suspend: %v", err)
	}
	s, err = c.DomainStatus(ctx, name)
	if want := (DomainStatus{State: StatePaused, Active: true, Persistent: true}); err != nil || s != want {
		t.Fatalf("DomainStatus of a paused domain = %+v, %v; want %+v", s, err, want)
	}
	if err := c.AbortJob(ctx, name); err == nil || !strings.HasPrefix(err.Error(), `fake: abort job of domain "`+name+`": `) {
		t.Errorf("AbortJob without a job = %v; want an error naming the hypervisor, the operation and the domain", err)
	}
	if err := c.Resume(ctx, name); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if s, err = c.DomainStatus(ctx, name); err != nil || s.State != StateRunning {
		t.Fatalf("DomainStatus after Resume = %+v, %v; want running", s, err)
	}
}

func TestDomainOpsNoDomain(t *testing.T) {
	c := testConn(t)
	ctx := context.Background()
	name := uniqueName("absent")
	if _, err := c.DomainStatus(ctx, name); !errors.Is(err, ErrNoDomain) {
		t.Errorf("DomainStatus = %v, want ErrNoDomain", err)
	}
	if err := c.AbortJob(ctx, name); !errors.Is(err, ErrNoDomain) {
		t.Errorf("AbortJob = %v, want ErrNoDomain", err)
	}
	if err := c.Resume(ctx, name); !errors.Is(err, ErrNoDomain) {
		t.Errorf("Resume = %v, want ErrNoDomain", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.DomainStatus(cctx, "test"); !errors.Is(err, context.Canceled) {
		t.Errorf("DomainStatus on a cancelled context = %v, want context.Canceled", err)
	}
}
