package health

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// t0 is the start of every simulated run: tests never read the clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func newTracker(t testing.TB, th Threshold, cfg TrackerConfig) *Tracker {
	t.Helper()
	tr, err := NewTracker("hv1", th, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// step is one reading and the transition it should cause.
type step struct {
	v        float64
	from, to State
	bound    float64 // Transition.Threshold
}

func TestTrackerSteps(t *testing.T) {
	// CPU Temp: warning high 80, critical high 90, no lower bounds. Default margin
	// 0.25·(90−80) = 2.5: leaving critical needs < 87.5, leaving warning < 77.5.
	cpu := th("CPU Temp", none, none, 80, 90)
	// Fan: critical low 300, warning low 500, warning high 8000, critical high 9000. Margin:
	// min(0.25·200, 0.25·1000, 0.05·7500) = 50 RPM.
	fan := th("Fan1", 300, 500, 8000, 9000)

	tests := []struct {
		name  string
		th    Threshold
		cfg   TrackerConfig
		steps []step
	}{
		{
			name: "up through warning then critical, and back down with hysteresis",
			th:   cpu,
			steps: []step{
				{70, Unknown, OK, 0},               // first reading: classified afresh
				{75, OK, OK, 0},                    //
				{80, OK, Warning, 80},              // at the bound counts (IPMI: at or beyond)
				{85, Warning, Warning, 0},          //
				{90, Warning, Critical, 90},        //
				{95, Critical, Critical, 0},        //
				{88, Critical, Critical, 0},        // below 90 but 88 ≥ 87.5: held
				{87, Critical, Warning, 90},        // 87 < 87.5: back to warning, from the bound 90
				{79, Warning, Warning, 0},          // below 80 but 79 ≥ 77.5: held
				{77.5, Warning, Warning, 0},        // exactly at the margin: still held
				{77, Warning, OK, 80},              // back past 80 by more than 2.5
				{79.9, OK, OK, 0},                  // just under the bound: ok again, no margin to enter
				{100, OK, Critical, 90},            // one jump straight to critical
				{60, Critical, OK, 90},             // and one straight back: 60 is past every margin
				{math.Nextafter(80, 0), OK, OK, 0}, //
			},
		},
		{
			name: "leaving critical lands in warning when within the warning margin",
			th:   cpu,
			steps: []step{
				{91, Unknown, Critical, 90},
				// 78 is under 80 (raw: ok) but within 2.5 of it, so held at warning
				{78, Critical, Warning, 90},
				{77, Warning, OK, 80},
			},
		},
		{
			name: "low side of a fan, and a flip to the high side",
			th:   fan,
			steps: []step{
				{3000, Unknown, OK, 0},
				{500, OK, Warning, 500}, // at the warning low
				{300, Warning, Critical, 300},
				{340, Critical, Critical, 0}, // 340 ≤ 300+50: held
				{351, Critical, Warning, 300},
				{549, Warning, Warning, 0}, // 549 ≤ 500+50: held
				// now the other side: 8500 is a warning by itself; the state stays warning but
				// is now held by 8000, so leaving it needs < 7950
				{8500, Warning, Warning, 0},
				{7960, Warning, Warning, 0},
				{7949, Warning, OK, 8000},
			},
		},
		{
			name: "explicit zero hysteresis leaves at once",
			th:   withHysteresis(cpu, 0),
			steps: []step{
				{80, Unknown, Warning, 80},
				{79.99, Warning, OK, 80},
				{80, OK, Warning, 80},
			},
		},
		{
			name: "no bounds: always ok",
			th:   th("Power", none, none, none, none),
			steps: []step{
				{1e6, Unknown, OK, 0},
				{-1e6, OK, OK, 0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(t, tt.th, tt.cfg)
			for i, s := range tt.steps {
				got, err := tr.Update(sec(float64(i)), s.v)
				if err != nil {
					t.Fatalf("step %d: Update(%v): %v", i, s.v, err)
				}
				if got.From != s.from || got.To != s.to || got.Threshold != s.bound {
					t.Fatalf("step %d: Update(%v) = %s -> %s (bound %g), want %s -> %s (bound %g)",
						i, s.v, got.From, got.To, got.Threshold, s.from, s.to, s.bound)
				}
				if got.Host != "hv1" || got.Sensor != tt.th.Sensor || !got.At.Equal(sec(float64(i))) || got.Value != s.v {
					t.Fatalf("step %d: Transition = %+v, want host, sensor, time and value filled", i, got)
				}
				if tr.State() != s.to {
					t.Fatalf("step %d: State() = %s, want %s", i, tr.State(), s.to)
				}
			}
		})
	}
}

func TestTrackerDwell(t *testing.T) {
	// warning high 80, critical 90 (margin 2.5), and a state must last 30 s before improving
	tr := newTracker(t, th("CPU Temp", none, none, 80, 90), TrackerConfig{MinDwell: 30 * time.Second})
	for _, s := range []struct {
		at       float64
		v        float64
		from, to State
	}{
		{0, 85, Unknown, Warning},
		{10, 70, Warning, Warning}, // far past the margin, but only 10 s in warning
		{29, 70, Warning, Warning},
		{31, 95, Warning, Critical}, // worse states are entered at once, dwell or not
		{40, 70, Critical, Critical},
		{61, 70, Critical, OK}, // 30 s after entering critical
		{62, 81, OK, Warning},
	} {
		got, err := tr.Update(sec(s.at), s.v)
		if err != nil {
			t.Fatal(err)
		}
		if got.From != s.from || got.To != s.to {
			t.Fatalf("t=%vs Update(%v) = %s -> %s, want %s -> %s", s.at, s.v, got.From, got.To, s.from, s.to)
		}
	}
	if !tr.Since().Equal(sec(62)) {
		t.Errorf("Since() = %v, want t=62s", tr.Since())
	}
}

func TestTrackerInvalidReadings(t *testing.T) {
	tr := newTracker(t, th("CPU Temp", none, none, 80, 90), TrackerConfig{})
	if _, err := tr.Update(sec(0), 85); err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		got, err := tr.Update(sec(1), v)
		if !errors.Is(err, ErrInvalidReading) {
			t.Fatalf("Update(%v) error = %v, want ErrInvalidReading", v, err)
		}
		if !strings.Contains(err.Error(), `host hv1 sensor "CPU Temp"`) {
			t.Errorf("Update(%v) error = %q, want it to name host and sensor", v, err)
		}
		if got.Changed() || tr.State() != Warning {
			t.Errorf("Update(%v) changed the state: %+v, now %s", v, got, tr.State())
		}
	}
	// older than the newest reading
	got, err := tr.Update(sec(-1), 95)
	if !errors.Is(err, ErrOutOfOrder) || got.Changed() || tr.State() != Warning {
		t.Errorf("Update(older) = %+v, %v; want ErrOutOfOrder and no change", got, err)
	}
	// the same time again is accepted (two polls within the clock's resolution)
	if got, err := tr.Update(sec(0), 95); err != nil || got.To != Critical {
		t.Errorf("Update(same time) = %+v, %v; want warning -> critical", got, err)
	}
}

func TestTrackerNoReading(t *testing.T) {
	tr := newTracker(t, th("CPU Temp", none, none, 80, 90), TrackerConfig{})
	if got := tr.NoReading(sec(0)); got.Changed() {
		t.Errorf("NoReading() before any reading = %+v, want no change", got)
	}
	tr.Update(sec(1), 89)
	if got := tr.NoReading(sec(2)); got.From != Warning || got.To != Unknown {
		t.Errorf("NoReading() = %s -> %s, want warning -> unknown", got.From, got.To)
	}
	// afresh after unknown: 79 is ok although it would have been held at warning before
	if got, _ := tr.Update(sec(3), 79); got.From != Unknown || got.To != OK {
		t.Errorf("Update(79) after unknown = %s -> %s, want unknown -> ok", got.From, got.To)
	}
}

func TestNewTrackerRejects(t *testing.T) {
	if _, err := NewTracker("hv1", th("T", none, none, 90, 80), TrackerConfig{}); err == nil ||
		!strings.HasPrefix(err.Error(), `host hv1: sensor "T": warning high 90`) {
		t.Errorf("NewTracker(bad threshold) error = %v", err)
	}
	if _, err := NewTracker("hv1", th("T", none, none, 80, 90), TrackerConfig{MinDwell: -time.Second}); err == nil {
		t.Error("NewTracker(negative dwell) = nil error")
	}
}

// noiseRun feeds a tracker 5 minutes of 1 Hz readings of centre + uniform noise in
// [-amp, amp] and returns the transitions that changed the state.
func noiseRun(t *testing.T, thr Threshold, seed uint64, centre, amp float64) []Transition {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	tr := newTracker(t, thr, TrackerConfig{})
	var changes []Transition
	for i := range 300 {
		v := centre + amp*(2*rng.Float64()-1)
		got, err := tr.Update(sec(float64(i)), v)
		if err != nil {
			t.Fatal(err)
		}
		if got.Changed() {
			changes = append(changes, got)
		}
	}
	return changes
}

func TestTrackerNoFlapping(t *testing.T) {
	// Property: 5 simulated minutes at 1 Hz of 80 °C ± 2 °C (uniform) around the warning bound
	// 80, critical 90, default margin 2.5. Readings span [78, 82]: once warning is entered
	// (the first reading ≥ 80) it is never left, since that needs < 77.5. So each run has the
	// first reading's transition out of unknown and at most one ok -> warning.
	cpu := th("CPU Temp", none, none, 80, 90)
	for seed := range uint64(200) {
		changes := noiseRun(t, cpu, seed, 80, 2)
		if len(changes) == 0 || changes[0].From != Unknown {
			t.Fatalf("seed %d: first change %+v, want one out of unknown", seed, changes)
		}
		rest := changes[1:]
		if len(rest) > 1 || (len(rest) == 1 && (rest[0].From != OK || rest[0].To != Warning)) {
			t.Fatalf("seed %d: flapping: %d changes after the first: %+v", seed, len(rest), rest)
		}
	}

	// The same noise flaps without hysteresis, so the property above is the margin's doing:
	// readings cross 80 about half the time, so a run has dozens of changes.
	changes := noiseRun(t, withHysteresis(cpu, 0), 1, 80, 2)
	if len(changes) < 50 {
		t.Errorf("without hysteresis: %d changes, want many (is the test still sensitive?)", len(changes))
	}
}
