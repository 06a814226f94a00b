// Package health turns sensor readings into host health: per-sensor thresholds with hysteresis
// (ok / warning / critical), a trend predictor of when a reading will cross its critical threshold,
// and the health events the server reacts to.
//
// It decides nothing about VMs; the scheduler and the server read its events.
package health
