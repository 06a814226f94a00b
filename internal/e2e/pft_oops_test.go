//go:build e2e

package e2e

import "testing"

// The crash pattern of e2e-pft (d) knows a guest kernel crash from a console that goes on.
func TestPFTOopsPattern(t *testing.T) {
	for s, want := range map[string]bool{
		"[   87.559048] note: heartbeat[84] exited with irqs disabled\n":   true,
		"[   87.558091] RIP: 0010:foo+0x1/0x2\n":                           true,
		"HB 74 up=74.53 dirtied=9598MiB mb=128 rate=128\n":                 false,
		"BUG: unable to handle page fault for address: fffffffffffffff8\n": true,
	} {
		if got := oopsRE.MatchString(s); got != want {
			t.Errorf("%q: %v", s, got)
		}
	}
}
