package health

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func newPredictor(t testing.TB, thr Threshold, cfg PredictorConfig) *Predictor {
	t.Helper()
	p, err := NewPredictor(thr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ramp describes a simulated sensor: v(t) = start + slope·t + noise, sampled every interval,
// or at irregular intervals uniform in [interval/2, 3·interval/2].
type ramp struct {
	start, slope float64
	noise        float64 // uniform in [-noise, noise]
	interval     float64 // seconds
	irregular    bool
	spikes       float64 // fraction of samples replaced by start+slope·t+spike
	spike        float64
	quantum      float64 // readings rounded to multiples of this (IPMI sensors: 1 °C); 0: none
}

// run feeds the ramp to p until time end (seconds) and calls f after each sample.
func (r ramp) run(t testing.TB, p *Predictor, seed uint64, end float64, f func(at float64)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0xfeed))
	for at := 0.0; at < end; {
		v := r.start + r.slope*at + r.noise*(2*rng.Float64()-1)
		if r.spikes > 0 && rng.Float64() < r.spikes {
			v = r.start + r.slope*at + r.spike
		}
		if r.quantum > 0 {
			v = math.Round(v/r.quantum) * r.quantum
		}
		if err := p.Add(sec(at), v); err != nil {
			t.Fatal(err)
		}
		f(at)
		step := r.interval
		if r.irregular {
			step *= 0.5 + rng.Float64()
		}
		at += step
	}
}

// accuracy follows the predictions of a ramp towards critical high 90 and measures them.
type accuracy struct {
	firstAhead    float64 // seconds before the true crossing of the first confident prediction; -1: none
	maxRelErr     float64 // largest |predicted − true time left| / true time left while ≥ ahead s ahead
	maxAbsErrLate float64 // largest |predicted − true time left| in seconds after that
	n             int     // confident predictions
}

func measure(t *testing.T, r ramp, seed uint64, ahead float64) accuracy {
	t.Helper()
	p := newPredictor(t, th("CPU Temp", none, none, 80, 90), PredictorConfig{})
	cross := (90 - r.start) / r.slope // the true crossing, seconds from the start
	acc := accuracy{firstAhead: -1}
	r.run(t, p, seed, cross, func(at float64) {
		pred, ok := p.Predict()
		if !ok || pred.Confidence < DefaultMinConfidence {
			return
		}
		if pred.Threshold != 90 || pred.At.Before(pred.Earliest) || pred.Latest.Before(pred.At) ||
			pred.Confidence > 1 || !pred.AsOf.Equal(sec(at)) {
			t.Fatalf("seed %d t=%.1f: inconsistent prediction %+v", seed, at, pred)
		}
		acc.n++
		left := cross - at
		if acc.firstAhead < 0 {
			acc.firstAhead = left
		}
		errSec := math.Abs(pred.In().Seconds() - left)
		if left >= ahead {
			acc.maxRelErr = max(acc.maxRelErr, errSec/left)
		} else {
			acc.maxAbsErrLate = max(acc.maxAbsErrLate, errSec)
		}
	})
	return acc
}

func TestPredictRamp(t *testing.T) {
	// A linear ramp of 0.2 °C/s from 60 °C towards the critical bound 90 °C crosses it at
	// t = (90 − 60)/0.2 = 150 s. With ±0.5 °C of uniform noise, every prediction confident
	// enough to be reported (≥ DefaultMinConfidence) must put the crossing within ±20% of the
	// true time left while it is at least 30 s away, and within ±6 s (20% of 30 s) after that;
	// the first must come at least 30 s ahead. Properties over 50 seeds each.
	//
	// Expected: with n samples 1 s apart the slope's standard error is about
	// σ/√(n³/12), σ = 0.5/√3 = 0.29, so 0.2 °C/s is known to 5% after 15 s; the confidence
	// (the 99% interval's end ratio) reaches 0.8 after some 25-40 samples, i.e. 110-125 s ahead.
	// Near the crossing the error is the fitted level's, about 0.1 °C / 0.2 °C/s = 0.5 s.
	base := ramp{start: 60, slope: 0.2, noise: 0.5, interval: 1}
	irregular := base
	irregular.irregular = true
	spiky := base // one sample in ten a wild +15 °C (a misread): Theil–Sen ignores them
	spiky.spikes, spiky.spike = 0.1, 15
	quantised := base // readings in whole degrees, as most BMCs give them
	quantised.quantum = 1
	// 0.05 °C/s, 600 s to go, a sample every 2.5-7.5 s: the fitted level's error of about
	// 0.14 °C is 2.8 s at this slope, so relative accuracy is checked while ≥ 150 s ahead
	// (±20% there is ±30 s, the bound used for the last 150 s)
	slowSparse := ramp{start: 60, slope: 0.05, noise: 0.5, interval: 5, irregular: true}

	for _, tc := range []struct {
		name  string
		r     ramp
		ahead float64 // seconds: relative error checked before, absolute (≤ 20% of it) after
	}{
		{"1 Hz", base, 30},
		{"irregular spacing", irregular, 30},
		{"10% spikes", spiky, 30},
		{"quantised to 1 °C", quantised, 30},
		{"slow and sparse", slowSparse, 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			worst := accuracy{firstAhead: math.Inf(1)}
			for seed := range uint64(50) {
				acc := measure(t, tc.r, seed, tc.ahead)
				if acc.firstAhead < tc.ahead {
					t.Fatalf("seed %d: first confident prediction %.0f s ahead, want ≥ %.0f s", seed, acc.firstAhead, tc.ahead)
				}
				if acc.maxRelErr > 0.2 {
					t.Fatalf("seed %d: time left off by %.0f%% while ≥ %.0f s ahead, want ≤ 20%%", seed, 100*acc.maxRelErr, tc.ahead)
				}
				if acc.maxAbsErrLate > 0.2*tc.ahead {
					t.Fatalf("seed %d: time left off by %.1f s in the last %.0f s, want ≤ %.0f s", seed, acc.maxAbsErrLate, tc.ahead, 0.2*tc.ahead)
				}
				worst.firstAhead = min(worst.firstAhead, acc.firstAhead)
				worst.maxRelErr = max(worst.maxRelErr, acc.maxRelErr)
				worst.maxAbsErrLate = max(worst.maxAbsErrLate, acc.maxAbsErrLate)
			}
			t.Logf("50 seeds: first confident prediction ≥ %.0f s ahead; worst error %.1f%% of the time left (≥ %.0f s ahead), %.1f s in the last %.0f s",
				worst.firstAhead, 100*worst.maxRelErr, tc.ahead, worst.maxAbsErrLate, tc.ahead)
		})
	}
}

func TestPredictNone(t *testing.T) {
	highOnly := th("CPU Temp", none, none, 80, 90)
	tests := []struct {
		name string
		r    ramp
		end  float64
		cfg  PredictorConfig
	}{
		// 0.2 °C/s down from 80 with no lower bound: heading away from the only critical bound
		{"ramp away", ramp{start: 80, slope: -0.2, noise: 0.5, interval: 1}, 300, PredictorConfig{}},
		// 9 samples: fewer than DefaultMinSamples
		{"too few samples", ramp{start: 60, slope: 0.2, interval: 1}, 9, PredictorConfig{}},
		// 40 samples at 4 Hz span 9.75 s: shorter than DefaultMinSpan
		{"too short a span", ramp{start: 60, slope: 0.2, interval: 0.25}, 10, PredictorConfig{}},
		// a perfectly flat reading has no trend
		{"flat", ramp{start: 70, interval: 1}, 300, PredictorConfig{}},
		// a slope far too small for its noise: the interval straddles zero
		{"trend lost in noise", ramp{start: 70, slope: 0.001, noise: 2, interval: 1}, 300, PredictorConfig{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(20) {
				p := newPredictor(t, highOnly, tt.cfg)
				tt.r.run(t, p, seed, tt.end, func(at float64) {
					if pred, ok := p.Predict(); ok && pred.Confidence >= DefaultMinConfidence {
						t.Fatalf("seed %d t=%.2f: prediction %+v, want none", seed, at, pred)
					}
				})
			}
		})
	}
}

func TestPredictFlatNoiseRarelyPredicts(t *testing.T) {
	// Property: on pure noise the slope's 99% interval excludes zero about 1% of the time
	// (0.5% on the side of the bound), and then only barely, so the confidence is low. Over
	// 20 seeds × 300 s, predictions should be rare and none should be confident.
	highOnly := th("CPU Temp", none, none, 80, 90)
	var samples, predictions int
	for seed := range uint64(20) {
		p := newPredictor(t, highOnly, PredictorConfig{})
		ramp{start: 70, noise: 2, interval: 1}.run(t, p, seed, 300, func(at float64) {
			samples++
			pred, ok := p.Predict()
			if !ok {
				return
			}
			predictions++
			if pred.Confidence >= DefaultMinConfidence {
				t.Fatalf("seed %d t=%.0f: confident prediction on flat noise: %+v", seed, at, pred)
			}
		})
	}
	// consecutive windows overlap, so chance trends come in bursts: allow 4 times 0.5%
	if frac := float64(predictions) / float64(samples); frac > 0.02 {
		t.Errorf("predictions on %.1f%% of flat noisy samples, want about 0.5%%", 100*frac)
	} else {
		t.Logf("predictions (all unconfident) on %.1f%% of flat noisy samples", 100*frac)
	}
}

func TestPredictLowSide(t *testing.T) {
	// falling 0.2/s from 80 with a critical low of 5: crossing at (80−5)/0.2 = 375 s. After 60
	// noiseless samples (t = 59) the fit is exact: level 80 − 0.2·59 = 68.2, slope −0.2, so
	// the crossing is (5 − 68.2)/(−0.2) = 316 s after the newest sample, with confidence 1.
	p := newPredictor(t, th("Inlet", 5, none, none, 90), PredictorConfig{})
	ramp{start: 80, slope: -0.2, interval: 1}.run(t, p, 0, 60, func(float64) {})
	pred, ok := p.Predict()
	if !ok {
		t.Fatal("no prediction")
	}
	if pred.Threshold != 5 || math.Abs(pred.Slope+0.2) > 1e-9 || math.Abs(pred.Value-68.2) > 1e-9 ||
		math.Abs(pred.In().Seconds()-316) > 1e-6 || math.Abs(pred.Confidence-1) > 1e-9 || pred.Samples != 60 {
		t.Errorf("Predict() = %+v, want bound 5, slope −0.2, value 68.2, 316 s, confidence 1, 60 samples", pred)
	}
}

func TestPredictAlreadyBeyond(t *testing.T) {
	// rising past the bound already: the crossing is now
	p := newPredictor(t, th("CPU Temp", none, none, 80, 90), PredictorConfig{})
	ramp{start: 95, slope: 0.2, interval: 1}.run(t, p, 0, 20, func(float64) {})
	pred, ok := p.Predict()
	if !ok || pred.In() != 0 || !pred.Earliest.Equal(pred.AsOf) || !pred.Latest.Equal(pred.AsOf) {
		t.Errorf("Predict() = %+v, %v; want a crossing now", pred, ok)
	}
}

func TestPredictorWindow(t *testing.T) {
	p := newPredictor(t, th("T", none, none, 80, 90), PredictorConfig{Window: 30 * time.Second, MaxSamples: 20})
	// 1 Hz for 100 s: MaxSamples keeps the newest 20
	for i := range 100 {
		if err := p.Add(sec(float64(i)), float64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if s := p.Samples(); len(s) != 20 || !s[0].At.Equal(sec(80)) {
		t.Errorf("after 100 samples: %d kept from %v, want 20 from t=80s", len(s), s[0].At)
	}
	// a gap: samples more than 30 s older than the newest go
	p.Add(sec(125), 1)
	if s := p.Samples(); len(s) != 6 || !s[0].At.Equal(sec(95)) {
		t.Errorf("after a gap: %d kept from %v, want 6 from t=95s", len(s), s[0].At)
	}
	p.Reset()
	if len(p.Samples()) != 0 {
		t.Error("Reset() kept samples")
	}
}

func TestPredictorAddRejects(t *testing.T) {
	p := newPredictor(t, th("T", none, none, 80, 90), PredictorConfig{})
	if err := p.Add(sec(0), 1); err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{math.NaN(), math.Inf(-1)} {
		if err := p.Add(sec(1), v); !errors.Is(err, ErrInvalidReading) {
			t.Errorf("Add(%v) = %v, want ErrInvalidReading", v, err)
		}
	}
	if err := p.Add(sec(0), 2); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("Add(same time) = %v, want ErrOutOfOrder", err)
	}
	if len(p.Samples()) != 1 {
		t.Errorf("rejected samples were kept: %v", p.Samples())
	}
}

func TestSlopeIntervalCoverage(t *testing.T) {
	// Property: Sen's 90% interval should contain the true slope in about 90% of independent
	// noisy windows. 400 windows of 30 samples, slope 0.1, noise ±1: expect 360 ± 3σ
	// (σ = √(400·0.9·0.1) = 6), i.e. 342..378; allow a little more below since the rank
	// rounding widens the interval (conservative).
	p := newPredictor(t, th("T", none, none, 80, 90), PredictorConfig{MinSamples: 30, MaxSamples: 30, Level: 0.9})
	rng := rand.New(rand.NewPCG(7, 7))
	covered, runs := 0, 400
	s := make([]Sample, 30)
	for range runs {
		for i := range s {
			at := float64(i) + 0.5*rng.Float64() // irregular spacing
			s[i] = Sample{At: sec(at), Value: 0.1*at + 2*rng.Float64() - 1}
		}
		f, _ := p.fit(s)
		if f.lower <= 0.1 && 0.1 <= f.upper {
			covered++
		}
	}
	if covered < 340 || covered > 385 {
		t.Errorf("the 90%% interval covered the true slope in %d of %d windows, want about 360", covered, runs)
	} else {
		t.Logf("the 90%% interval covered the true slope in %d of %d windows", covered, runs)
	}
}

func TestMKVariance(t *testing.T) {
	tests := []struct {
		values []float64
		want   float64
	}{
		// n = 3, no ties: 3·2·11/18 = 66/18
		{[]float64{1, 2, 3}, 66.0 / 18},
		// one pair tied: (66 − 2·1·9)/18 = 48/18
		{[]float64{1, 2, 1}, 48.0 / 18},
		// all tied: (66 − 3·2·11)/18 = 0
		{[]float64{5, 5, 5}, 0},
		// n = 10: 10·9·25/18 = 125
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 125},
	}
	for _, tt := range tests {
		s := make([]Sample, len(tt.values))
		for i, v := range tt.values {
			s[i] = Sample{At: sec(float64(i)), Value: v}
		}
		if got := mkVariance(s, make([]float64, len(s))); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("mkVariance(%v) = %v, want %v", tt.values, got, tt.want)
		}
	}
	// z for 90%: 1.6449 (normal tables)
	if z := zQuantile(0.9); math.Abs(z-1.6449) > 1e-4 {
		t.Errorf("zQuantile(0.9) = %v, want 1.6449", z)
	}
}

func TestSelectKth(t *testing.T) {
	// Property: selectKth agrees with sorting, on random data with many ties (quantised
	// sensors give runs of equal slopes) and on sorted and reversed input.
	rng := rand.New(rand.NewPCG(42, 42))
	for run := range 500 {
		n := 1 + rng.IntN(300)
		a := make([]float64, n)
		for i := range a {
			switch run % 4 {
			case 0:
				a[i] = rng.NormFloat64()
			case 1:
				a[i] = float64(rng.IntN(5)) // heavy ties
			case 2:
				a[i] = float64(i) // sorted
			case 3:
				a[i] = float64(n - i) // reversed
			}
		}
		sorted := slices.Sorted(slices.Values(a))
		k := rng.IntN(n)
		got := selectKth(a, k)
		if got != sorted[k] {
			t.Fatalf("run %d: selectKth(k=%d of %d) = %v, want %v", run, k, n, got, sorted[k])
		}
		for i := range a {
			if (i < k && a[i] > got) || (i > k && a[i] < got) {
				t.Fatalf("run %d: a[%d] = %v on the wrong side of a[%d] = %v", run, i, a[i], k, got)
			}
		}
	}
}
