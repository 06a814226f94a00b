package main

import (
	"reflect"
	"testing"
)

func TestParseParams(t *testing.T) {
	tests := []struct {
		name     string
		cmdline  string
		want     params
		warnings int
	}{
		{"empty", "", params{}, 0},
		{"kernel cmdline", "console=ttyS0 quiet panic=-1 dirty_mb=128 dirty_rate=32", params{128, 32}, 0},
		// the kernel lets a later key override an earlier one; so do we
		{"later wins", "dirty_mb=64 dirty_mb=16", params{dirtyMB: 16}, 0},
		{"bare words ignored", "dirty_mb ro dirty_rate=8", params{dirtyRate: 8}, 0},
		{"malformed", "dirty_mb=lots dirty_rate=-1", params{}, 2},
		{"similar names ignored", "xdirty_mb=5 dirty_mbx=6", params{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings := parseParams(tt.cmdline)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseParams(%q) = %+v, want %+v", tt.cmdline, got, tt.want)
			}
			if len(warnings) != tt.warnings {
				t.Errorf("parseParams(%q) warnings = %q, want %d", tt.cmdline, warnings, tt.warnings)
			}
		})
	}
}

func TestDirtierWrapsAndCounts(t *testing.T) {
	d := &dirtier{buf: make([]byte, 4*pageSize)}
	d.fill()
	// 6 pages on a 4-page buffer: one full pass plus two pages, so next is back at page 2
	d.dirty(6 * pageSize)
	if d.next != 2*pageSize {
		t.Errorf("next = %d, want %d", d.next, 2*pageSize)
	}
	if d.pass != 1 {
		t.Errorf("pass = %d, want 1", d.pass)
	}
	// fill counts the 4 pages, dirty the 6 more
	if got := d.written.Load(); got != 10*pageSize {
		t.Errorf("written = %d, want %d", got, 10*pageSize)
	}
}
