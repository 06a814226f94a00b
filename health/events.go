package health

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Kind is what an Event is about.
type Kind string

// The kinds of events.
const (
	KindState      Kind = "state"      // a sensor's state changed
	KindPrediction Kind = "prediction" // a sensor is expected to reach a critical bound within the horizon
	KindError      Kind = "error"      // a sensor's readings are unusable (NaN, infinite, out of order)
)

// Event is something about a host's health the server should hear of.
type Event struct {
	Host, Sensor string
	Kind         Kind
	At           time.Time // the time of the reading that caused it
	// From and To are the states of a state change. For a prediction, From is the current
	// state and To Critical; for an error both are the current state.
	From, To State
	Value    float64 // the reading (state), the fitted current value (prediction); 0 for errors
	// Threshold is the bound of a state change (see Transition.Threshold) or the critical
	// bound a prediction heads for; 0 for errors.
	Threshold   float64
	PredictedAt time.Time // predictions: the expected crossing
	Confidence  float64   // predictions: see Prediction.Confidence
	Message     string    // one line for people
}

// Defaults of EventConfig's zero fields.
const (
	DefaultHorizon       = 15 * time.Minute
	DefaultMinConfidence = 0.8
	DefaultShift         = 0.25
	DefaultMinShift      = 30 * time.Second
	DefaultRepeat        = time.Minute
	DefaultForget        = 2 * time.Minute
)

// EventConfig says which predictions are worth an event. Zero fields take the defaults above;
// negative ones are errors.
type EventConfig struct {
	// Horizon: predictions of a crossing further ahead are not reported.
	Horizon time.Duration
	// MinConfidence: predictions less confident are not reported.
	MinConfidence float64
	// A reported prediction is reported again when its crossing time moves by more than Shift
	// times the time left until it and by more than MinShift, but not sooner than Repeat after
	// the previous report.
	Shift    float64
	MinShift time.Duration
	Repeat   time.Duration
	// Forget: after this long without a reportable prediction, the next one is reported as new.
	Forget time.Duration
}

func (c EventConfig) validate() error {
	switch {
	case c.Horizon < 0 || c.MinShift < 0 || c.Repeat < 0 || c.Forget < 0:
		return fmt.Errorf("negative duration (horizon %v, min shift %v, repeat %v, forget %v)", c.Horizon, c.MinShift, c.Repeat, c.Forget)
	case !(c.MinConfidence >= 0 && c.MinConfidence <= 1):
		return fmt.Errorf("minimum confidence %v is not in [0, 1]", c.MinConfidence)
	case !(c.Shift >= 0) || math.IsInf(c.Shift, 1):
		return fmt.Errorf("shift %v is not a number >= 0", c.Shift)
	}
	return nil
}

func (c EventConfig) withDefaults() EventConfig {
	c.Horizon = orDefault(c.Horizon, DefaultHorizon)
	c.MinConfidence = orDefault(c.MinConfidence, DefaultMinConfidence)
	c.Shift = orDefault(c.Shift, DefaultShift)
	c.MinShift = orDefault(c.MinShift, DefaultMinShift)
	c.Repeat = orDefault(c.Repeat, DefaultRepeat)
	c.Forget = orDefault(c.Forget, DefaultForget)
	return c
}

// orDefault is v, or def when v is zero or negative (settings where zero means "the default").
func orDefault[T int | float64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Emitter decides which events one sensor's updates give, remembering what it reported so that
// a sensor does not cause a storm of events:
//
//   - state: every change, except a sensor seen for the first time being ok (Unknown → OK).
//   - prediction: while the state is ok or warning, a prediction with at least MinConfidence
//     whose crossing is within Horizon is reported when it first appears; then again only when
//     its estimate moves materially (see EventConfig), at most once per Repeat. It is forgotten
//     after Forget without such a prediction, or once the sensor is critical.
//   - error: at most one per kind of error (invalid reading, out of order, other) per Repeat,
//     so a sensor that reads NaN every other second gives one event a minute, not thirty.
//
// An Emitter belongs to one (host, sensor) and is not safe for concurrent use. It has no
// clock: time is that of the updates.
type Emitter struct {
	cfg EventConfig

	known     bool         // has had a reading
	errAt     [3]time.Time // when each class of error was last reported (see errClass)
	announced bool         // a prediction has been reported and not forgotten
	reported  Prediction   // the last one reported
	reportAt  time.Time    // when
	seenAt    time.Time    // when a reportable prediction was last seen
}

// NewEmitter returns an Emitter for one sensor.
func NewEmitter(cfg EventConfig) (*Emitter, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return &Emitter{cfg: cfg.withDefaults()}, nil
}

// Decide returns the events of one update: the tracker's transition and error for a reading,
// and the predictor's result after it (predicted false when there is none).
func (e *Emitter) Decide(tr Transition, p Prediction, predicted bool, err error) []Event {
	var out []Event
	if err != nil {
		c := errClass(err)
		if last := e.errAt[c]; last.IsZero() || tr.At.Sub(last).Abs() >= e.cfg.Repeat {
			out = append(out, Event{
				Host: tr.Host, Sensor: tr.Sensor, Kind: KindError, At: tr.At,
				From: tr.From, To: tr.To, Message: err.Error(),
			})
			e.errAt[c] = tr.At
		}
		return out
	}

	if tr.Changed() && (e.known || tr.From != Unknown || tr.To != OK) {
		out = append(out, stateEvent(tr))
	}
	if tr.To != Unknown {
		e.known = true
	}

	if predicted && e.reportable(tr, p) {
		e.seenAt = tr.At
		if !e.announced || (e.moved(tr.At, p) && tr.At.Sub(e.reportAt) >= e.cfg.Repeat) {
			out = append(out, predictionEvent(tr, p))
			e.announced, e.reported, e.reportAt = true, p, tr.At
		}
	} else if e.announced && (tr.To == Critical || tr.At.Sub(e.seenAt) >= e.cfg.Forget) {
		e.announced = false
	}
	return out
}

// errClass sorts errors for de-duplication: their messages carry values and times.
func errClass(err error) int {
	switch {
	case errors.Is(err, ErrInvalidReading):
		return 0
	case errors.Is(err, ErrOutOfOrder):
		return 1
	}
	return 2
}

// reportable: the sensor is not yet critical and the prediction is confident and near enough.
func (e *Emitter) reportable(tr Transition, p Prediction) bool {
	return (tr.To == OK || tr.To == Warning) &&
		p.Confidence >= e.cfg.MinConfidence &&
		p.At.Sub(tr.At) <= e.cfg.Horizon
}

// moved: the estimate differs materially from the one reported.
func (e *Emitter) moved(now time.Time, p Prediction) bool {
	shift := p.At.Sub(e.reported.At).Abs()
	left := max(p.At.Sub(now), 0)
	return shift > e.cfg.MinShift && float64(shift) > e.cfg.Shift*float64(left)
}

func stateEvent(tr Transition) Event {
	ev := Event{
		Host: tr.Host, Sensor: tr.Sensor, Kind: KindState, At: tr.At,
		From: tr.From, To: tr.To, Value: tr.Value, Threshold: tr.Threshold,
	}
	switch {
	case tr.To == Unknown:
		ev.Message = fmt.Sprintf("%s %q: %s -> unknown: no reading", tr.Host, tr.Sensor, tr.From)
	case tr.From != Unknown && tr.To < tr.From:
		ev.Message = fmt.Sprintf("%s %q: %s -> %s: %g is back from the %s bound %g",
			tr.Host, tr.Sensor, tr.From, tr.To, tr.Value, tr.From, tr.Threshold)
	case tr.To == OK:
		ev.Message = fmt.Sprintf("%s %q: %s -> ok: %g", tr.Host, tr.Sensor, tr.From, tr.Value)
	default:
		ev.Message = fmt.Sprintf("%s %q: %s -> %s: %g reached the %s bound %g",
			tr.Host, tr.Sensor, tr.From, tr.To, tr.Value, tr.To, tr.Threshold)
	}
	return ev
}

func predictionEvent(tr Transition, p Prediction) Event {
	return Event{
		Host: tr.Host, Sensor: tr.Sensor, Kind: KindPrediction, At: tr.At,
		From: tr.To, To: Critical, Value: p.Value, Threshold: p.Threshold,
		PredictedAt: p.At, Confidence: p.Confidence,
		Message: fmt.Sprintf("%s %q: %.4g now, %+.3g per second, expected to reach the critical bound %g in %s (between %s and %s, confidence %.2f)",
			tr.Host, tr.Sensor, p.Value, p.Slope, p.Threshold,
			p.At.Sub(tr.At).Round(time.Second), p.Earliest.Sub(tr.At).Round(time.Second),
			p.Latest.Sub(tr.At).Round(time.Second), p.Confidence),
	}
}
