package config

import (
	"strings"
	"testing"
)

// The server section's defaults, and its bad values named by file:line and key.
func TestServerSection(t *testing.T) {
	cfg, err := Load(Source{Path: writeFile(t, "server:\n  url: http://127.0.0.1:7480\n  policy: energy\n"), Explicit: true})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "127.0.0.1:7480" || cfg.Server.Policy != "energy" || cfg.Server.Refresh <= 0 {
		t.Errorf("server = %+v", cfg.Server)
	}
	for _, tc := range []struct{ body, want string }{
		{"server:\n  listen: 7480\n", `:2: server.listen: "7480" is not host:port`},
		{"server:\n  url: 127.0.0.1:7480\n", `:2: server.url: "127.0.0.1:7480" is not an http(s) URL`},
		{"server:\n  policy: greedy\n", `:2: server.policy: unknown policy "greedy" (known: balanced, pack, energy, thermal)`},
		{"server:\n  refresh: 0s\n", ":2: server.refresh: must be positive"},
		{"migration:\n  timeout_action: pause\n", `:2: migration.timeout_action: "pause" is neither abort nor postcopy`},
		{"migration:\n  verify_for: -1s\n", `migration: max_downtime, bandwidth_mibs and verify_for must not be negative`},
		{"server:\n  temp_warn_celsius: 95\n  temp_crit_celsius: 90\n", "server.temp_warn_celsius: bounds must be non-negative with warn ≤ crit"},
	} {
		_, err := Load(Source{Path: writeFile(t, tc.body), Explicit: true})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.body, err, tc.want)
		}
	}
}
