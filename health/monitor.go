package health

import (
	"errors"
	"fmt"
	"time"
)

// Config gathers the settings of a Monitor. The zero value is usable: every field has a
// default.
type Config struct {
	Tracker   TrackerConfig
	Predictor PredictorConfig
	Events    EventConfig
}

// Monitor is one sensor of one host: its Tracker, Predictor and Emitter, fed together. It is
// what the agent keeps per (host, sensor); it is not safe for concurrent use.
type Monitor struct {
	tracker   *Tracker
	predictor *Predictor
	emitter   *Emitter
}

// NewMonitor returns a Monitor for one sensor of host, checked against th.
func NewMonitor(host string, th Threshold, cfg Config) (*Monitor, error) {
	t, err := NewTracker(host, th, cfg.Tracker)
	if err != nil {
		return nil, err
	}
	p, err := NewPredictor(th, cfg.Predictor)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", host, err)
	}
	e, err := NewEmitter(cfg.Events)
	if err != nil {
		return nil, fmt.Errorf("host %s sensor %q: %w", host, th.Sensor, err)
	}
	return &Monitor{tracker: t, predictor: p, emitter: e}, nil
}

// Observe takes a reading and returns the events it gives. An unusable reading gives an error
// event (once per run of errors) and changes nothing.
func (m *Monitor) Observe(at time.Time, v float64) []Event {
	tr, err := m.tracker.Update(at, v)
	if err != nil {
		return m.emitter.Decide(tr, Prediction{}, false, err)
	}
	// the tracker accepts a reading at the same time as the previous one; the fit needs
	// distinct times and keeps the first
	if err := m.predictor.Add(at, v); err != nil && !errors.Is(err, ErrOutOfOrder) {
		return m.emitter.Decide(tr, Prediction{}, false, err)
	}
	p, ok := m.predictor.Predict()
	return m.emitter.Decide(tr, p, ok, nil)
}

// NoReading records that the sensor has no reading now and returns the events that gives.
func (m *Monitor) NoReading(at time.Time) []Event {
	return m.emitter.Decide(m.tracker.NoReading(at), Prediction{}, false, nil)
}

// State returns the sensor's current state.
func (m *Monitor) State() State { return m.tracker.State() }

// Prediction returns the current prediction, if any.
func (m *Monitor) Prediction() (Prediction, bool) { return m.predictor.Predict() }
