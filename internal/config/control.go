package config

import "time"

// Control configures the server's control loop: evacuation of hypervisors in trouble, then
// rebalancing and consolidation (scheduler.Pipeline.Rebalance plans, the loop applies).
type Control struct {
	// Mode: auto applies plans; recommend writes them to the plans table for an operator
	// (drover plans, drover approve ID, drover reject ID). Moves of `drover drain` run in both.
	Mode string `mapstructure:"mode"`
	// Aggressiveness 1–5: 1 only mandatory evacuations (critical, predicted, draining hosts);
	// 2 and up also rebalance load and heat, more eagerly the higher; 4 and up also consolidate.
	Aggressiveness int `mapstructure:"aggressiveness"`
	// Period: the loop also wakes on every health event.
	Period time.Duration `mapstructure:"period"`
	// Horizon: a host predicted to breach a health threshold within it is evacuated now.
	Horizon time.Duration `mapstructure:"horizon"`
	// Cooldown: a vnode moved (or tried) less than this ago is left alone, except to leave a
	// critical host.
	Cooldown time.Duration `mapstructure:"cooldown"`
	// MaxMovesPerCycle and MaxMovesPerHost cap the rebalancing and consolidation moves of one
	// plan (evacuations are never capped by them), the latter per hypervisor, in or out.
	MaxMovesPerCycle int `mapstructure:"max_moves_per_cycle"`
	MaxMovesPerHost  int `mapstructure:"max_moves_per_host"`
	// Hysteresis is the score gain (points of the placement score, 0–100) a rebalancing move
	// must bring at aggressiveness 3; it is scaled by (6 − aggressiveness) / 3.
	Hysteresis float64 `mapstructure:"hysteresis"`
	// Spares are hypervisors kept empty for evacuations: tried first as their targets, never
	// used for rebalancing or consolidation.
	Spares []string `mapstructure:"spares"`
}

func controlDefaults() Control {
	return Control{Mode: "auto", Aggressiveness: 2, Period: 10 * time.Second, Horizon: 15 * time.Minute,
		Cooldown: 10 * time.Minute, MaxMovesPerCycle: 2, MaxMovesPerHost: 1, Hysteresis: 10}
}

// validateControl checks the control section.
func (c *Config) validateControl(bad func(key, format string, args ...any)) {
	k := c.Control
	switch k.Mode {
	case "auto", "recommend":
	default:
		bad("control.mode", "%q is not one of auto, recommend", k.Mode)
	}
	if k.Aggressiveness < 1 || k.Aggressiveness > 5 {
		bad("control.aggressiveness", "must be 1 (only evacuations) to 5 (most eager), got %d", k.Aggressiveness)
	}
	if k.Period <= 0 {
		bad("control.period", "must be positive, got %v", k.Period)
	}
	if k.Horizon < 0 || k.Cooldown < 0 {
		bad("control.horizon", "horizon %v and cooldown %v must not be negative", k.Horizon, k.Cooldown)
	}
	if k.MaxMovesPerCycle < 0 || k.MaxMovesPerHost < 0 {
		bad("control.max_moves_per_cycle", "max_moves_per_cycle %d and max_moves_per_host %d must not be negative",
			k.MaxMovesPerCycle, k.MaxMovesPerHost)
	}
	if !(k.Hysteresis >= 0 && k.Hysteresis <= 100) {
		bad("control.hysteresis", "must be a score gain in [0, 100], got %v", k.Hysteresis)
	}
	seen := map[string]bool{}
	for _, s := range k.Spares {
		switch {
		case seen[s]:
			bad("control.spares", "%q is listed twice", s)
		case len(c.Hypervisors) > 0:
			if _, ok := c.Hypervisor(s); !ok {
				bad("control.spares", "%q is not a configured hypervisor", s)
			}
		}
		seen[s] = true
	}
}
