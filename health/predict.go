package health

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"
)

// Defaults of PredictorConfig's zero fields.
const (
	DefaultWindow     = 2 * time.Minute
	DefaultMaxSamples = 60
	DefaultMinSamples = 10
	DefaultMinSpan    = 10 * time.Second
	DefaultLevel      = 0.99
)

// PredictorConfig tunes Predictors. Zero fields take the defaults above; negative ones are
// errors.
type PredictorConfig struct {
	// Window: samples older than this, counted back from the newest, are forgotten.
	Window time.Duration
	// MaxSamples: at most this many of the newest samples are kept. The fit costs O(n²) in
	// them; at 1 Hz the default 60 makes the effective window one minute.
	MaxSamples int
	// MinSamples and MinSpan: with fewer samples, or samples spanning less time, there is no
	// prediction.
	MinSamples int
	MinSpan    time.Duration
	// Level is the confidence level of the slope's interval, in (0, 1). A trend whose
	// interval includes zero is no trend.
	Level float64
}

// validate rejects negative settings and a level outside [0, 1): zero means the default, but a
// negative value is a mistake.
func (c PredictorConfig) validate() error {
	switch {
	case c.Window < 0:
		return fmt.Errorf("negative window %v", c.Window)
	case c.MaxSamples < 0 || c.MinSamples < 0:
		return fmt.Errorf("negative sample count (max %d, min %d)", c.MaxSamples, c.MinSamples)
	case c.MinSpan < 0:
		return fmt.Errorf("negative minimum span %v", c.MinSpan)
	case !(c.Level >= 0 && c.Level < 1):
		return fmt.Errorf("confidence level %v is not in (0, 1)", c.Level)
	}
	return nil
}

func (c PredictorConfig) withDefaults() PredictorConfig {
	c.Window = orDefault(c.Window, DefaultWindow)
	c.MinSamples = max(orDefault(c.MinSamples, DefaultMinSamples), 3)
	c.MaxSamples = max(orDefault(c.MaxSamples, DefaultMaxSamples), c.MinSamples)
	c.MinSpan = orDefault(c.MinSpan, DefaultMinSpan)
	if c.Level == 0 {
		c.Level = DefaultLevel
	}
	return c
}

// Prediction says when a sensor's reading is expected to reach a critical bound.
type Prediction struct {
	Threshold float64   // the critical bound the trend heads for
	AsOf      time.Time // the newest sample's time, from which the trend is extrapolated
	At        time.Time // when the fitted trend reaches Threshold; AsOf if it already has
	// Earliest and Latest are the same with the ends of the slope's confidence interval.
	Earliest, Latest time.Time
	Slope            float64 // units per second (Theil–Sen)
	Value            float64 // the fitted value at AsOf
	Confidence       float64 // in (0, 1]: the slope interval's near end over its far end
	Samples          int
}

// In returns how long until the predicted crossing, from AsOf.
func (p Prediction) In() time.Duration { return p.At.Sub(p.AsOf) }

// Predictor estimates, from a sensor's recent readings, when they will reach the sensor's
// critical bound.
//
// # Method
//
// The trend is the Theil–Sen estimator over the samples (tᵢ, vᵢ) of a sliding window, times
// in seconds counted from the newest sample (so tᵢ ≤ 0), irregular spacing allowed:
//
//	slope m = median over i<j of (vⱼ − vᵢ) / (tⱼ − tᵢ)
//	level b = median over i of (vᵢ − m·tᵢ)        the fitted value now
//
// Each pairwise slope is one vote, so up to 29% of wild samples (a misread, a spike) cannot
// move the median; least squares would follow them.
//
// The slope's confidence interval is Sen's (1968) distribution-free one, from the ranks of
// the N = n(n−1)/2 pairwise slopes sorted ascending. With z the normal quantile of the
// configured level (2.576 for the default 99%) and Var(S) the variance of the Mann–Kendall
// statistic S = Σ sign(vⱼ − vᵢ) under "no trend", corrected for groups of gₖ tied values,
//
//	Var(S) = [ n(n−1)(2n+5) − Σₖ gₖ(gₖ−1)(2gₖ+5) ] / 18
//	C = z·√Var(S),   lower = slope of rank ⌊(N−C)/2⌋,   upper = slope of rank ⌈(N+C)/2⌉+1
//
// If the interval contains zero there is no significant trend and no prediction (nearly the
// Mann–Kendall test at the same level). Otherwise the trend heads for the critical bound on the
// side of its sign, and with d = bound − b the crossing is expected d/m seconds after the
// newest sample, between d/upper and d/lower (for a rising trend; mirrored for a falling one).
// A trend towards a side without a critical bound gives no prediction.
//
// The confidence is min(|lower|, |upper|) / max(|lower|, |upper|), the ratio of the earliest to
// the latest crossing: 1 for a tight interval, near 0 when the slope could almost be zero.
// A confidence r puts the crossing within about ±(1−r)/(1+r) of its mid-interval time (±11%
// for r = 0.8), ignoring the smaller uncertainty of b. It grows with the number of samples
// and their span and falls with the noise, all through the width of the interval. The interval assumes independent noise; readings that wander slowly
// (autocorrelated noise) make it too narrow.
//
// There is no prediction with fewer than MinSamples samples or a span shorter than MinSpan.
//
// Cost: O(n²) time for the pairwise slopes and a linear-time selection (no full sort) of the
// three ranks; no allocation once warmed up. A Predictor is not safe for concurrent use.
type Predictor struct {
	cfg       PredictorConfig
	low, high float64 // the critical bounds, ±∞ when missing

	buf   []Sample // buf[start:] are the samples in time order
	start int

	slopes, scratch []float64
}

// Sample is one reading and its time.
type Sample struct {
	At    time.Time
	Value float64
}

// NewPredictor returns a Predictor for the critical bounds of th.
func NewPredictor(th Threshold, cfg PredictorConfig) (*Predictor, error) {
	if err := th.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("sensor %q: predictor: %w", th.Sensor, err)
	}
	cfg = cfg.withDefaults()
	l := newLimits(th)
	return &Predictor{
		cfg:  cfg,
		low:  l.critLow,
		high: l.critHigh,
		buf:  make([]Sample, 0, 2*cfg.MaxSamples),
	}, nil
}

// Add takes a reading. NaN or infinite readings (ErrInvalidReading) and readings not after the
// previous one (ErrOutOfOrder) are rejected and change nothing.
func (p *Predictor) Add(at time.Time, v float64) error {
	if !finite(v) {
		return fmt.Errorf("reading %v: %w", v, ErrInvalidReading)
	}
	live := p.buf[p.start:]
	if n := len(live); n > 0 && !at.After(live[n-1].At) {
		return fmt.Errorf("reading at %s: %w", at.Format(time.RFC3339Nano), ErrOutOfOrder)
	}
	if len(p.buf) == cap(p.buf) {
		// slide the live samples to the front instead of growing
		n := copy(p.buf, live)
		p.buf, p.start = p.buf[:n], 0
	}
	p.buf = append(p.buf, Sample{At: at, Value: v})
	// forget what is too old or too many
	live = p.buf[p.start:]
	drop := max(0, len(live)-p.cfg.MaxSamples)
	for drop < len(live) && at.Sub(live[drop].At) > p.cfg.Window {
		drop++
	}
	p.start += drop
	return nil
}

// Reset forgets every sample, as after a gap in the readings.
func (p *Predictor) Reset() { p.buf, p.start = p.buf[:0], 0 }

// Samples returns the samples in use, oldest first. The slice is the Predictor's own: it is
// valid until the next Add.
func (p *Predictor) Samples() []Sample { return p.buf[p.start:] }

// Predict estimates when the readings will reach a critical bound (see Predictor). ok is false
// when the data is too thin, the trend is not significant, or it heads for a side without a
// critical bound.
func (p *Predictor) Predict() (pred Prediction, ok bool) {
	s := p.buf[p.start:]
	n := len(s)
	if n < p.cfg.MinSamples || s[n-1].At.Sub(s[0].At) < p.cfg.MinSpan {
		return pred, false
	}
	f, ok := p.fit(s)
	if !ok {
		return pred, false
	}
	bound := p.high
	if f.slope < 0 {
		bound = p.low
	}
	if math.IsInf(bound, 0) {
		return pred, false
	}
	now := s[n-1].At
	d := bound - f.level // the way left, same sign as the slope unless already there
	pred = Prediction{
		Threshold: bound,
		AsOf:      now,
		At:        now,
		Earliest:  now,
		Latest:    now,
		Slope:     f.slope,
		Value:     f.level,
		Samples:   n,
	}
	near, far := f.upper, f.lower // slopes giving the earliest and the latest crossing
	if f.slope < 0 {
		near, far = f.lower, f.upper
	}
	pred.Confidence = far / near // same sign, |far| ≤ |near|
	if d*f.slope > 0 {
		pred.At = now.Add(seconds(d / f.slope))
		pred.Earliest = now.Add(seconds(d / near))
		pred.Latest = now.Add(seconds(d / far))
	}
	return pred, true
}

// trend is a Theil–Sen fit: slope with its confidence interval, and level at the newest sample.
type trend struct{ slope, lower, upper, level float64 }

// fit computes the Theil–Sen trend of s (time-ordered, at least 3 samples); ok is false when the
// slope's interval contains zero.
func (p *Predictor) fit(s []Sample) (f trend, ok bool) {
	n := len(s)
	now := s[n-1].At
	N := n * (n - 1) / 2
	p.slopes = slices.Grow(p.slopes[:0], N)
	p.scratch = slices.Grow(p.scratch[:0], n)
	ts := p.scratch[:n] // seconds before now, reused below
	for i, x := range s {
		ts[i] = x.At.Sub(now).Seconds()
	}
	slopes := p.slopes[:N]
	k := 0
	for i := range n {
		vi, ti := s[i].Value, ts[i]
		for j := i + 1; j < n; j++ {
			slopes[k] = (s[j].Value - vi) / (ts[j] - ti)
			k++
		}
	}

	// Sen's interval: ranks from the Mann–Kendall variance, corrected for tied values
	c := zQuantile(p.cfg.Level) * math.Sqrt(mkVariance(s, p.scratch[:n]))
	lo := int(math.Floor((float64(N)-c)/2)) - 1 // 0-based rank
	hi := int(math.Ceil((float64(N) + c) / 2))  // 0-based rank of the ⌈M2⌉+1-th
	lo, hi = max(lo, 0), min(hi, N-1)

	mid := N / 2
	med := selectKth(slopes, mid)
	if N%2 == 0 {
		med = (med + slices.Max(slopes[:mid])) / 2
	}
	f.slope = med
	f.lower = slopes[mid]
	if lo < mid {
		f.lower = selectKth(slopes[:mid], lo)
	}
	f.upper = slopes[mid]
	if hi > mid {
		f.upper = selectKth(slopes[mid+1:], hi-mid-1)
	}
	if !(f.lower > 0 || f.upper < 0) || f.slope == 0 {
		return f, false
	}

	// the level now: median of the samples moved along the slope to t = 0
	res := p.scratch[:n]
	for i, x := range s {
		res[i] = x.Value - med*x.At.Sub(now).Seconds()
	}
	f.level = selectKth(res, n/2)
	if n%2 == 0 {
		f.level = (f.level + slices.Max(res[:n/2])) / 2
	}
	return f, true
}

// mkVariance is the variance of the Mann–Kendall statistic of s under no trend, corrected for
// tied values; buf (len(s) long) is scratch.
func mkVariance(s []Sample, buf []float64) float64 {
	for i, x := range s {
		buf[i] = x.Value
	}
	slices.Sort(buf)
	n := float64(len(s))
	v := n * (n - 1) * (2*n + 5)
	for i := 0; i < len(buf); {
		j := i + 1
		for j < len(buf) && buf[j] == buf[i] {
			j++
		}
		if g := float64(j - i); g > 1 {
			v -= g * (g - 1) * (2*g + 5)
		}
		i = j
	}
	return max(v, 0) / 18
}

// zQuantile is the two-sided standard normal quantile of a confidence level: P(|Z| ≤ z) = level.
func zQuantile(level float64) float64 { return math.Sqrt2 * math.Erfinv(level) }

// maxAhead caps predictions so that far-off crossings do not overflow time.Duration.
const maxAhead = 100 * 365 * 24 * time.Hour

// seconds converts a non-negative number of seconds to a Duration, capped at maxAhead.
func seconds(x float64) time.Duration {
	if !(x < maxAhead.Seconds()) {
		return maxAhead
	}
	return time.Duration(x * float64(time.Second))
}

// selectKth rearranges a so that a[k] holds the value it would hold were a sorted, nothing
// greater before it and nothing smaller after it, and returns a[k]. It is Hoare's selection
// with his two-pointer partition around a median-of-three pivot value: elements equal to the
// pivot stop both pointers, so runs of equal values (common with quantised sensors) split
// evenly instead of degrading it. Expected linear time; a range that does not shrink fast
// enough is sorted instead, which bounds the worst case by O(n log n).
func selectKth(a []float64, k int) float64 {
	lo, hi := 0, len(a)-1
	budget := 2*bits.Len(uint(len(a))) + 4
	for lo < hi {
		if budget--; budget < 0 {
			slices.Sort(a[lo : hi+1])
			break
		}
		x, y, z := a[lo], a[lo+(hi-lo)/2], a[hi]
		pivot := max(min(x, y), min(max(x, y), z)) // median of three: a value in the range
		i, j := lo, hi
		for i <= j {
			for a[i] < pivot {
				i++
			}
			for a[j] > pivot {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		// a[lo..j] ≤ pivot, a[i..hi] ≥ pivot, and anything between equals it
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return a[k]
		}
	}
	return a[k]
}
