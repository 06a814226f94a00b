package health

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// State is a sensor's health. States are ordered: Unknown < OK < Warning < Critical, and
// "worse" means greater among the known states.
type State int

// The states of a sensor.
const (
	Unknown  State = iota // no reading (yet, or the BMC has none now)
	OK                    // inside its bounds
	Warning               // at or beyond a warning bound
	Critical              // at or beyond a critical bound
)

var stateNames = [...]string{Unknown: "unknown", OK: "ok", Warning: "warning", Critical: "critical"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// MarshalText writes the state's name, for JSON and logs.
func (s State) MarshalText() ([]byte, error) {
	if s < 0 || int(s) >= len(stateNames) {
		return nil, fmt.Errorf("no such state %d", int(s))
	}
	return []byte(stateNames[s]), nil
}

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("no such state %q (want unknown, ok, warning or critical)", b)
}

// Errors callers may test for with errors.Is.
var (
	// ErrInvalidReading: a reading is NaN or infinite. It changes nothing.
	ErrInvalidReading = errors.New("not a finite number")
	// ErrOutOfOrder: a reading is older than one already taken. It changes nothing.
	ErrOutOfOrder = errors.New("older than the previous reading")
)

// TrackerConfig tunes Trackers. The zero value is usable.
type TrackerConfig struct {
	// MinDwell is how long a sensor stays in a state at least before it may move to a better
	// one; 0: no minimum. Worse states are always entered at once.
	MinDwell time.Duration
}

// Transition is what one reading did to a sensor's state. From == To when nothing changed.
type Transition struct {
	Host, Sensor string
	At           time.Time
	Value        float64 // the reading; 0 when there is none (To is Unknown)
	From, To     State
	// Threshold is the bound the change is about: the one reached when the state got worse,
	// the one the reading came back from when it got better. It is 0 when the change crossed no
	// bound (to or from Unknown without one) and when nothing changed.
	Threshold float64
}

// Changed reports whether the state changed.
func (t Transition) Changed() bool { return t.From != t.To }

// Tracker follows one sensor of one host through its states, with hysteresis: a state is
// entered as soon as a reading reaches its bound, and left only when a reading comes back past
// that bound by the threshold's Margin, and not before MinDwell. A reading that hovers around a
// bound with noise smaller than the margin therefore changes the state once, not at every
// sample.
//
// The bounds are applied as follows, with m the margin (0 when entering) and missing bounds
// at ±∞: critical when v ≥ critical high − m or v ≤ critical low + m, else warning when
// v ≥ warning high − m or v ≤ warning low + m, else ok. Getting worse uses m = 0; getting
// better goes only as far as the classification with the margin allows.
//
// A Tracker is not safe for concurrent use; the agent owns one per (host, sensor).
type Tracker struct {
	host   string
	th     Threshold
	lim    limits
	margin float64
	dwell  time.Duration

	state State
	bound float64   // the bound that put the sensor in its state
	since time.Time // when the state was entered
	last  time.Time // the newest reading's time
}

// limits are a threshold's bounds with missing ones at ±∞, for cheap comparisons.
type limits struct{ critLow, warnLow, warnHigh, critHigh float64 }

func newLimits(t Threshold) limits {
	or := func(p *float64, def float64) float64 {
		if p == nil {
			return def
		}
		return *p
	}
	return limits{
		critLow:  or(t.Critical.Low, math.Inf(-1)),
		warnLow:  or(t.Warning.Low, math.Inf(-1)),
		warnHigh: or(t.Warning.High, math.Inf(1)),
		critHigh: or(t.Critical.High, math.Inf(1)),
	}
}

// classify returns the state of v with every bound moved m towards the ok band, and the bound
// that decided it (0 for ok).
func (l limits) classify(v, m float64) (State, float64) {
	switch {
	case v >= l.critHigh-m:
		return Critical, l.critHigh
	case v <= l.critLow+m:
		return Critical, l.critLow
	case v >= l.warnHigh-m:
		return Warning, l.warnHigh
	case v <= l.warnLow+m:
		return Warning, l.warnLow
	}
	return OK, 0
}

// NewTracker returns a Tracker in state Unknown for one sensor of host. The threshold is
// validated.
func NewTracker(host string, th Threshold, cfg TrackerConfig) (*Tracker, error) {
	if err := th.Validate(); err != nil {
		return nil, fmt.Errorf("host %s: %w", host, err)
	}
	if cfg.MinDwell < 0 {
		return nil, fmt.Errorf("host %s sensor %q: negative minimum dwell %v", host, th.Sensor, cfg.MinDwell)
	}
	return &Tracker{host: host, th: th, lim: newLimits(th), margin: th.Margin(), dwell: cfg.MinDwell}, nil
}

// Update takes a reading taken at the given time and returns what it did to the state. A NaN
// or infinite reading (ErrInvalidReading) or one older than the previous reading
// (ErrOutOfOrder) is rejected with an error naming host and sensor and changes nothing; the
// Transition returned with the error has From == To.
func (t *Tracker) Update(at time.Time, v float64) (Transition, error) {
	tr := Transition{Host: t.host, Sensor: t.th.Sensor, At: at, Value: v, From: t.state, To: t.state}
	if !finite(v) {
		tr.Value = 0
		return tr, fmt.Errorf("host %s sensor %q: reading %v: %w", t.host, t.th.Sensor, v, ErrInvalidReading)
	}
	if at.Before(t.last) {
		return tr, fmt.Errorf("host %s sensor %q: reading at %s: %w (%s)", t.host, t.th.Sensor,
			at.Format(time.RFC3339Nano), ErrOutOfOrder, t.last.Format(time.RFC3339Nano))
	}
	t.last = at

	raw, rawBound := t.lim.classify(v, 0)
	next, nextBound := raw, rawBound
	if t.state != Unknown && raw < t.state {
		// better: only as far as the margin allows, and only after the dwell
		held, heldBound := t.lim.classify(v, t.margin)
		if held >= t.state || at.Sub(t.since) < t.dwell {
			next, nextBound = t.state, t.bound
		} else {
			next, nextBound = held, heldBound
		}
	}
	if next != t.state {
		tr.Threshold = rawBound // reached
		if next < t.state && t.state != Unknown {
			tr.Threshold = t.bound // came back from
		}
		t.state, t.since = next, at
	}
	// the bound that holds the state; when the state stays, it may now be the other side's
	t.bound = nextBound
	tr.To = t.state
	return tr, nil
}

// NoReading records that the sensor has no reading at the given time (the BMC reports it
// unavailable): the state becomes Unknown. The next reading is classified afresh, without
// hysteresis.
func (t *Tracker) NoReading(at time.Time) Transition {
	tr := Transition{Host: t.host, Sensor: t.th.Sensor, At: at, From: t.state, To: Unknown}
	if at.After(t.last) {
		t.last = at
	}
	if t.state != Unknown {
		t.state, t.bound, t.since = Unknown, 0, at
	}
	return tr
}

// State returns the sensor's current state.
func (t *Tracker) State() State { return t.state }

// Since returns when the current state was entered (zero before the first reading).
func (t *Tracker) Since() time.Time { return t.since }

// Threshold returns the threshold the tracker checks against.
func (t *Tracker) Threshold() Threshold { return t.th }
