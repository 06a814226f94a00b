package migrate

import (
	"errors"
	"strings"
	"testing"

	"github.com/drover-hpc/drover/internal/virt"
)

func TestPlace(t *testing.T) {
	run := &virt.Domain{Name: "vn1", State: virt.StateRunning, Active: true}
	paused := &virt.Domain{Name: "vn1", State: virt.StatePaused, Active: true}
	off := &virt.Domain{Name: "vn1", State: virt.StateShutOff, Persistent: true}
	down := errors.New("connection refused")
	for _, tc := range []struct {
		name    string
		dst     string
		seen    []sighting
		wantSrc string
		wantErr error
		msg     string
	}{
		{"runs on hv1, to hv2", "hv2", []sighting{{hv: "hv1", dom: run}, {hv: "hv2"}}, "hv1", nil, ""},
		{"an inactive definition on the destination is no obstacle", "hv2",
			[]sighting{{hv: "hv1", dom: run}, {hv: "hv2", dom: off}}, "hv1", nil, ""},
		{"a third host down is only a warning", "hv2",
			[]sighting{{hv: "hv1", dom: run}, {hv: "hv2"}, {hv: "hv3", err: down}}, "hv1", nil, ""},
		{"unknown destination", "hv9", []sighting{{hv: "hv1", dom: run}, {hv: "hv2"}}, "",
			ErrUnknownHypervisor, `unknown hypervisor "hv9" (configured: hv1, hv2)`},
		{"destination unreachable, checked before anything else", "hv2",
			[]sighting{{hv: "hv1"}, {hv: "hv2", err: down}}, "", ErrUnreachable, "destination hv2: connection refused"},
		{"already there", "hv1", []sighting{{hv: "hv1", dom: run}, {hv: "hv2"}}, "", ErrSameHypervisor, "vn1 already runs on hv1"},
		{"nowhere", "hv2", []sighting{{hv: "hv1"}, {hv: "hv2"}}, "", ErrNotRunning, "vn1 runs on none of hv1, hv2"},
		{"nowhere that answered", "hv2", []sighting{{hv: "hv1", err: down}, {hv: "hv2"}}, "", ErrNotRunning,
			"runs on none of hv2; could not ask hv1: connection refused"},
		{"defined but shut off", "hv2", []sighting{{hv: "hv1", dom: off}, {hv: "hv2"}}, "", ErrNotRunning, "runs on none"},
		{"paused", "hv2", []sighting{{hv: "hv1", dom: paused}, {hv: "hv2"}}, "", ErrNotRunning, "vn1 is paused on hv1"},
		{"two copies", "hv3", []sighting{{hv: "hv1", dom: run}, {hv: "hv2", dom: paused}, {hv: "hv3"}}, "",
			ErrRunsTwice, "vn1 is active on hv1 (running) and hv2 (paused)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := place("vn1", tc.dst, tc.seen)
			if tc.wantErr == nil {
				if err != nil || p.src.hv != tc.wantSrc || p.dst.hv != tc.dst {
					t.Fatalf("place = %+v, %v; want source %s", p, err, tc.wantSrc)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v; want %v with %q", err, tc.wantErr, tc.msg)
			}
		})
	}
}

func TestOutcome(t *testing.T) {
	// only one side running and the other certainly without the guest decides; all else is lost
	for _, tc := range []struct {
		src, dst presence
		want     failure
	}{
		{running, absent, rolledBack},
		{absent, running, movedAnyway},
		{running, running, lost},
		{running, stuck, lost}, // a paused incoming copy is still there
		{running, unknown, lost},
		{stuck, absent, lost}, // paused on the source: not confirmed running
		{unknown, running, lost},
		{absent, absent, lost},
	} {
		if got := outcome(tc.src, tc.dst); got != tc.want {
			t.Errorf("outcome(%s, %s) = %d, want %d", tc.src, tc.dst, got, tc.want)
		}
	}
}
