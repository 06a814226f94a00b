package health

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/drover-hpc/drover/internal/bmc"
)

// Limits are the bounds of one severity. A reading at or below Low, or at or above High, has
// reached that severity (the IPMI convention: a threshold is crossed when the reading is at or
// beyond it). A nil bound does not exist.
type Limits struct {
	Low  *float64
	High *float64
}

// Threshold is what drover checks one sensor's readings against.
type Threshold struct {
	Sensor   string // as the BMC names it, e.g. "CPU Temp"
	Warning  Limits
	Critical Limits
	// Hysteresis is how far back past a bound a reading must come before the state that bound put
	// it in is left, in the sensor's unit. Nil: the default rule of Margin.
	Hysteresis *float64
	// Source says where the threshold comes from, for messages: "file:line" or "bmc".
	Source string
}

// Fractions of the default hysteresis rule (see Threshold.Margin).
const (
	DefaultWarningBandFraction = 0.25 // of the gap between a warning bound and the critical bound beyond it
	DefaultOKBandFraction      = 0.05 // of the gap between the innermost lower and upper bounds
	DefaultSingleBoundFraction = 0.02 // of the magnitude of a sensor's only bound
)

// bound is one of a Threshold's four bounds, named for messages.
type bound struct {
	name string
	v    *float64
}

// bounds lists the four bounds in their required order: critical low ≤ warning low < warning
// high ≤ critical high.
func (t Threshold) bounds() [4]bound {
	return [4]bound{
		{"critical low", t.Critical.Low},
		{"warning low", t.Warning.Low},
		{"warning high", t.Warning.High},
		{"critical high", t.Critical.High},
	}
}

// HasBounds reports whether the threshold has any bound at all. A threshold without bounds is
// valid: its sensor is tracked but never leaves ok.
func (t Threshold) HasBounds() bool {
	for _, b := range t.bounds() {
		if b.v != nil {
			return true
		}
	}
	return false
}

// Validate checks that the bounds are finite and ordered, critical low ≤ warning low < warning
// high ≤ critical high (any of them may be missing; a lower bound must be below every upper
// one), and that the hysteresis is finite, not negative and, when the sensor is bounded on both
// sides, less than half the ok band (otherwise a reading could never come back to ok).
func (t Threshold) Validate() error {
	if err := t.validate(); err != nil {
		return fmt.Errorf("sensor %q: %w", t.Sensor, err)
	}
	return nil
}

func (t Threshold) validate() error {
	if strings.TrimSpace(t.Sensor) == "" {
		return errors.New("no sensor name")
	}
	bs := t.bounds()
	for _, b := range bs {
		if b.v != nil && !finite(*b.v) {
			return fmt.Errorf("%s %v is not a finite number", b.name, *b.v)
		}
	}
	for i := range bs {
		for j := i + 1; j < len(bs); j++ {
			a, b := bs[i], bs[j]
			if a.v == nil || b.v == nil {
				continue
			}
			// warning and critical on the same side may coincide (an empty warning band);
			// a lower and an upper bound may not
			sameSide := i/2 == j/2
			if *a.v > *b.v || (!sameSide && *a.v == *b.v) {
				return fmt.Errorf("%s %g is not below %s %g (want critical low <= warning low < warning high <= critical high)",
					a.name, *a.v, b.name, *b.v)
			}
		}
	}
	if t.Hysteresis != nil {
		h := *t.Hysteresis
		if !finite(h) || h < 0 {
			return fmt.Errorf("hysteresis %v is not a finite number >= 0", h)
		}
		if lo, hi, ok := t.okBand(); ok && 2*h >= hi-lo {
			return fmt.Errorf("hysteresis %g is not less than half the ok band %g..%g", h, lo, hi)
		}
	}
	return nil
}

// okBand returns the innermost lower and upper bounds, when the sensor has both.
func (t Threshold) okBand() (lo, hi float64, ok bool) {
	l, h := cmp.Or(t.Warning.Low, t.Critical.Low), cmp.Or(t.Warning.High, t.Critical.High)
	if l == nil || h == nil {
		return 0, 0, false
	}
	return *l, *h, true
}

// Margin is the hysteresis in use: Hysteresis when set, else the default rule, which scales
// with the sensor's own bounds since one margin cannot suit °C, volts and RPM alike:
//
//   - the smallest of DefaultWarningBandFraction times each warning band (the gap between a
//     warning bound and the critical bound beyond it) and DefaultOKBandFraction times the ok band
//     (innermost lower to innermost upper bound), among those the sensor has;
//   - for a sensor with a single bound, DefaultSingleBoundFraction times its magnitude;
//   - 0 without bounds.
//
// For example warning high 80 and critical high 90 give 0.25·10 = 2.5 °C; the classic
// `CPU Temp 10 85` gives 0.05·75 = 3.75 °C; a 12 V rail warned at 11.4/12.6 and critical at
// 10.8/13.2 gives min(0.25·0.6, 0.05·1.2) = 0.06 V; a lone upper critical 85 gives 1.7.
func (t Threshold) Margin() float64 {
	if t.Hysteresis != nil {
		return *t.Hysteresis
	}
	h := math.Inf(1)
	if t.Warning.Low != nil && t.Critical.Low != nil && *t.Warning.Low > *t.Critical.Low {
		h = min(h, DefaultWarningBandFraction*(*t.Warning.Low-*t.Critical.Low))
	}
	if t.Warning.High != nil && t.Critical.High != nil && *t.Critical.High > *t.Warning.High {
		h = min(h, DefaultWarningBandFraction*(*t.Critical.High-*t.Warning.High))
	}
	if lo, hi, ok := t.okBand(); ok {
		h = min(h, DefaultOKBandFraction*(hi-lo))
	}
	if !math.IsInf(h, 1) {
		return h
	}
	for _, b := range t.bounds() {
		if b.v != nil {
			// a single bound, or one side's coinciding warning and critical bounds
			h = DefaultSingleBoundFraction * math.Abs(*b.v)
		}
	}
	if math.IsInf(h, 1) {
		return 0
	}
	return h
}

// FromBMC turns the BMC's own thresholds for a sensor into a Threshold: non-critical bounds
// become warning bounds and critical bounds critical ones. A side without a critical bound but
// with a non-recoverable one uses that as its critical bound. The result is validated: BMCs
// do report inconsistent thresholds.
func FromBMC(sensor string, bt bmc.Thresholds) (Threshold, error) {
	t := Threshold{
		Sensor:   sensor,
		Warning:  Limits{Low: clone(bt.LowerNonCritical), High: clone(bt.UpperNonCritical)},
		Critical: Limits{Low: clone(cmp.Or(bt.LowerCritical, bt.LowerNonRecoverable)), High: clone(cmp.Or(bt.UpperCritical, bt.UpperNonRecoverable))},
		Source:   "bmc",
	}
	if err := t.Validate(); err != nil {
		return Threshold{}, fmt.Errorf("bmc thresholds: %w", err)
	}
	return t, nil
}

// Table holds the configured thresholds by sensor name. Names match ignoring case and runs of
// white space ("cpu  temp" is "CPU Temp"). A Table is read-only once built and safe for
// concurrent use.
type Table struct {
	byKey map[string]Threshold
	order []string // keys in the order given
}

// NewTable validates the thresholds and indexes them by sensor. A sensor given twice is an
// error.
func NewTable(ths []Threshold) (*Table, error) {
	t := &Table{byKey: make(map[string]Threshold, len(ths))}
	var errs []error
	for _, th := range ths {
		if err := th.Validate(); err != nil {
			errs = append(errs, withSource(th.Source, err))
			continue
		}
		k := key(th.Sensor)
		if prev, dup := t.byKey[k]; dup {
			errs = append(errs, withSource(th.Source, fmt.Errorf("sensor %q is already given (%s)", th.Sensor, cmp.Or(prev.Source, "earlier"))))
			continue
		}
		t.byKey[k] = th
		t.order = append(t.order, k)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// Lookup returns the configured threshold of a sensor.
func (t *Table) Lookup(sensor string) (Threshold, bool) {
	if t == nil {
		return Threshold{}, false
	}
	th, ok := t.byKey[key(sensor)]
	return th, ok
}

// For returns the threshold to check a sensor against: the configured one, else the BMC's own
// (FromBMC). A config entry replaces the BMC's thresholds as a whole; an entry without bounds
// (`Sensor - -`) silences a sensor whose BMC thresholds are wrong. A sensor with neither gets a
// Threshold without bounds.
func (t *Table) For(s bmc.Sensor) (Threshold, error) {
	if th, ok := t.Lookup(s.Name); ok {
		th.Sensor = s.Name
		return th, nil
	}
	return FromBMC(s.Name, s.Thresholds)
}

// All returns the configured thresholds in the order they were given.
func (t *Table) All() []Threshold {
	if t == nil {
		return nil
	}
	out := make([]Threshold, 0, len(t.order))
	for _, k := range t.order {
		out = append(out, t.byKey[k])
	}
	return out
}

// Unmatched returns the configured thresholds no sensor of the list matches. A host may lack a
// sensor, so this is no error, but the agent should log them: a misspelt sensor name shows up
// here.
func (t *Table) Unmatched(sensors []string) []Threshold {
	have := make(map[string]bool, len(sensors))
	for _, s := range sensors {
		have[key(s)] = true
	}
	var out []Threshold
	for _, th := range t.All() {
		if !have[key(th.Sensor)] {
			out = append(out, th)
		}
	}
	return out
}

// key is the form sensor names are matched in.
func key(name string) string { return strings.ToLower(strings.Join(strings.Fields(name), " ")) }

// withSource prefixes err with where the threshold was given, when known.
func withSource(src string, err error) error {
	if src == "" {
		return err
	}
	return fmt.Errorf("%s: %w", src, err)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func clone(p *float64) *float64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
