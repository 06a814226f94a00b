package config

import (
	"strings"
	"testing"
	"time"
)

// The control section's defaults, values from the file, and bad values named by file:line and key.
func TestControlSection(t *testing.T) {
	cfg, err := Load(Source{Path: writeFile(t, ""), Explicit: true})
	if err != nil {
		t.Fatal(err)
	}
	want := Control{Mode: "auto", Aggressiveness: 2, Period: 10 * time.Second, Horizon: 15 * time.Minute,
		Cooldown: 10 * time.Minute, MaxMovesPerCycle: 2, MaxMovesPerHost: 1, Hysteresis: 10}
	if got := cfg.Control; got.Mode != want.Mode || got.Aggressiveness != want.Aggressiveness || got.Period != want.Period ||
		got.Horizon != want.Horizon || got.Cooldown != want.Cooldown || got.MaxMovesPerCycle != want.MaxMovesPerCycle ||
		got.MaxMovesPerHost != want.MaxMovesPerHost || got.Hysteresis != want.Hysteresis || len(got.Spares) != 0 {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}

	cfg, err = Load(Source{Path: writeFile(t, `
hypervisors:
  - {name: hv1, uri: "qemu+tcp://a/system"}
  - {name: hv2, uri: "qemu+tcp://b/system"}
control:
  mode: recommend
  aggressiveness: 5
  period: 2s
  horizon: 5m
  cooldown: 1m
  max_moves_per_cycle: 4
  max_moves_per_host: 2
  hysteresis: 2.5
  spares: [hv2]
`), Explicit: true})
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Control
	if c.Mode != "recommend" || c.Aggressiveness != 5 || c.Period != 2*time.Second || c.Horizon != 5*time.Minute ||
		c.Cooldown != time.Minute || c.MaxMovesPerCycle != 4 || c.MaxMovesPerHost != 2 || c.Hysteresis != 2.5 ||
		len(c.Spares) != 1 || c.Spares[0] != "hv2" {
		t.Errorf("control = %+v", c)
	}

	for _, tc := range []struct{ body, want string }{
		{"control:\n  mode: eager\n", `:2: control.mode: "eager" is not one of auto, recommend`},
		{"control:\n  aggressiveness: 6\n", ":2: control.aggressiveness: must be 1 (only evacuations) to 5 (most eager), got 6"},
		{"control:\n  aggressiveness: 0\n", "control.aggressiveness: must be 1"},
		{"control:\n  period: 0s\n", ":2: control.period: must be positive"},
		{"control:\n  cooldown: -1m\n", "control.horizon: horizon 15m0s and cooldown -1m0s must not be negative"},
		{"control:\n  max_moves_per_host: -1\n", "control.max_moves_per_cycle: max_moves_per_cycle 2 and max_moves_per_host -1"},
		{"control:\n  hysteresis: 101\n", ":2: control.hysteresis: must be a score gain in [0, 100], got 101"},
		{"hypervisors:\n  - {name: hv1, uri: x}\ncontrol:\n  spares: [hv9]\n", `control.spares: "hv9" is not a configured hypervisor`},
		{"control:\n  spares: [hv1, hv1]\n", `control.spares: "hv1" is listed twice`},
	} {
		_, err := Load(Source{Path: writeFile(t, tc.body), Explicit: true})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.body, err, tc.want)
		}
	}
}
