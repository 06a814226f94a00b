// Package health turns sensor readings into host health: per-sensor thresholds with hysteresis
// (ok / warning / critical), a trend predictor of when a reading will cross its critical threshold,
// and the health events the server reacts to.
//
// It decides nothing about VMs; the scheduler and the server read its events.
//
// It is pure logic: no I/O beyond parsing the text of a thresholds file (the caller reads the
// file), no clock and no randomness. Every reading carries its time, so runs are deterministic
// and replayable; the agent should pass times from time.Now, whose monotonic reading keeps
// wall-clock steps from reordering readings.
//
// The pieces, one per file:
//
//   - threshold.go: Threshold (warning and critical Limits, hysteresis), its validation and
//     default margin; Table, the configured thresholds by sensor, falling back to the BMC's own
//     (FromBMC) for sensors the configuration does not name.
//   - parse.go: the two forms of a thresholds file, the 2007 proactive fault-tolerance daemon's
//     one-line `CPU Temp 10 85` (ParseLines) and YAML (ParseYAML); errors name file and line.
//   - tracker.go: State and Tracker, one sensor's state with hysteresis and a minimum dwell, so
//     that noise around a bound does not flap.
//   - predict.go: Predictor, a Theil–Sen trend over a sliding window with Sen's confidence
//     interval, giving when the critical bound will be reached and how sure that is.
//   - events.go: Event and Emitter, which state changes, predictions and errors are reported,
//     without event storms.
//   - monitor.go: Monitor, the three together for one (host, sensor), as the agent uses them:
//     one Observe per reading.
//
// The costs per reading are measured by the benchmarks in bench_test.go.
package health
