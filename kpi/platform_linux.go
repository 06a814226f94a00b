//go:build linux

package kpi

// platformCollectors are the sysfs collectors of Linux.
func platformCollectors(env Env) []namedCollector {
	return []namedCollector{
		{"hwmon", NewHwmon(env)},
		{"thermal", NewThermal(env)},
		{"rapl", NewRAPL(env)},
	}
}
