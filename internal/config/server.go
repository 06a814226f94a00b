package config

import (
	"net"
	"net/url"
	"time"
)

// Server configures `drover server` and how the hooks and the CLI reach it.
type Server struct {
	// Listen is the API's host:port. Keep it on a management network or loopback: the API is
	// authenticated, not encrypted.
	Listen string `mapstructure:"listen"`
	// URL is where clients (the Slurm hooks, the CLI) reach the server; empty: the hooks place
	// vnodes themselves, with the same engine and the same database view.
	URL string `mapstructure:"url"`
	// Token authenticates API clients; prefer TokenFile or DROVER_SERVER_TOKEN.
	Token     string `mapstructure:"token"`
	TokenFile string `mapstructure:"token_file"`
	// Refresh is the period of the server's fleet view refresh (health events refresh it at once).
	Refresh time.Duration `mapstructure:"refresh"`
	// Policy names the placement policy: balanced, pack, energy or thermal.
	Policy string `mapstructure:"policy"`
	// TempWarnC and TempCritC are the hottest sensor's bounds for thermal scoring (0: unknown).
	TempWarnC float64 `mapstructure:"temp_warn_celsius"`
	TempCritC float64 `mapstructure:"temp_crit_celsius"`
}

func serverDefaults() Server {
	return Server{Listen: "127.0.0.1:7480", Refresh: 5 * time.Second, Policy: "balanced"}
}

// validateServer checks the server section.
func (c *Config) validateServer(bad func(key, format string, args ...any)) {
	s := c.Server
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		bad("server.listen", "%q is not host:port, e.g. 127.0.0.1:7480", s.Listen)
	}
	if s.URL != "" {
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("server.url", "%q is not an http(s) URL, e.g. http://127.0.0.1:7480", s.URL)
		}
	}
	if s.Refresh <= 0 {
		bad("server.refresh", "must be positive, got %v", s.Refresh)
	}
	switch s.Policy {
	case "balanced", "pack", "energy", "thermal":
	default:
		bad("server.policy", "unknown policy %q (known: balanced, pack, energy, thermal)", s.Policy)
	}
	if s.TempWarnC < 0 || s.TempCritC < 0 || (s.TempCritC > 0 && s.TempWarnC > s.TempCritC) {
		bad("server.temp_warn_celsius", "bounds must be non-negative with warn ≤ crit, got %v and %v", s.TempWarnC, s.TempCritC)
	}
}
