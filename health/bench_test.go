package health

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// The agent runs the tracker and the predictor for every sensor every second: these say what
// one sensor-second costs.

// noisyRamp is n readings 1 s apart rising 0.2/s from 60 with ±0.5 of noise, seeded.
func noisyRamp(n int) []float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	v := make([]float64, n)
	for i := range v {
		v[i] = 60 + 0.2*float64(i%150) + rng.Float64() - 0.5
	}
	return v
}

func BenchmarkTrackerUpdate(b *testing.B) {
	tr := newTracker(b, th("CPU Temp", 5, 10, 80, 90), TrackerConfig{MinDwell: 10 * time.Second})
	vs := noisyRamp(1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := tr.Update(t0.Add(time.Duration(i)*time.Second), vs[i%len(vs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkPredictor is one Add and one Predict with a full window of MaxSamples samples.
func BenchmarkPredictor(b *testing.B) {
	for _, n := range []int{30, 60, 120} {
		b.Run("samples="+strconv.Itoa(n), func(b *testing.B) {
			p := newPredictor(b, th("CPU Temp", 5, 10, 80, 90), PredictorConfig{MaxSamples: n, Window: time.Hour})
			vs := noisyRamp(1024)
			i := 0
			for ; i < n; i++ {
				p.Add(t0.Add(time.Duration(i)*time.Second), vs[i])
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Add(t0.Add(time.Duration(i)*time.Second), vs[i%len(vs)]); err != nil {
					b.Fatal(err)
				}
				p.Predict()
				i++
			}
		})
	}
}

// BenchmarkMonitorObserve is everything one reading costs with the defaults.
func BenchmarkMonitorObserve(b *testing.B) {
	m, err := NewMonitor("hv1", th("CPU Temp", 5, 10, 80, 90), Config{})
	if err != nil {
		b.Fatal(err)
	}
	vs := noisyRamp(1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Observe(t0.Add(time.Duration(i)*time.Second), vs[i%len(vs)])
		i++
	}
}
