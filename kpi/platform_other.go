//go:build !linux

package kpi

// platformCollectors: drover reads sysfs on Linux only.
func platformCollectors(Env) []namedCollector { return nil }
