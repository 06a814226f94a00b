package health

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func trans(at float64, v float64, from, to State, bound float64) Transition {
	return Transition{Host: "hv1", Sensor: "CPU Temp", At: sec(at), Value: v, From: from, To: to, Threshold: bound}
}

// pred is a prediction made at time at (seconds) of a crossing of 90 in `in` seconds.
func pred(at, in, confidence float64) Prediction {
	return Prediction{
		Threshold: 90, AsOf: sec(at), At: sec(at + in), Earliest: sec(at + in*0.9), Latest: sec(at + in*1.1),
		Slope: 0.1, Value: 80, Confidence: confidence, Samples: 30,
	}
}

func newEmitter(t *testing.T) *Emitter {
	t.Helper()
	e, err := NewEmitter(EventConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEmitterStates(t *testing.T) {
	e := newEmitter(t)
	for i, tc := range []struct {
		tr   Transition
		want string // the Message of the one event expected; empty: none
	}{
		// a sensor seen for the first time and fine is not news
		{trans(0, 70, Unknown, OK, 0), ""},
		{trans(1, 71, OK, OK, 0), ""},
		{trans(2, 82, OK, Warning, 80), `hv1 "CPU Temp": ok -> warning: 82 reached the warning bound 80`},
		{trans(3, 91, Warning, Critical, 90), `hv1 "CPU Temp": warning -> critical: 91 reached the critical bound 90`},
		{trans(4, 87, Critical, Warning, 90), `hv1 "CPU Temp": critical -> warning: 87 is back from the critical bound 90`},
		{trans(5, 0, Warning, Unknown, 0), `hv1 "CPU Temp": warning -> unknown: no reading`},
		// back from unknown: news now, since the sensor had been known
		{trans(6, 70, Unknown, OK, 0), `hv1 "CPU Temp": unknown -> ok: 70`},
	} {
		got := e.Decide(tc.tr, Prediction{}, false, nil)
		switch {
		case tc.want == "" && len(got) != 0:
			t.Fatalf("step %d: %+v, want no event", i, got)
		case tc.want != "" && len(got) != 1:
			t.Fatalf("step %d: %d events %+v, want one", i, len(got), got)
		case tc.want != "":
			ev := got[0]
			if ev.Kind != KindState || ev.From != tc.tr.From || ev.To != tc.tr.To || ev.Value != tc.tr.Value ||
				ev.Threshold != tc.tr.Threshold || !ev.At.Equal(tc.tr.At) || ev.Host != "hv1" || ev.Sensor != "CPU Temp" {
				t.Errorf("step %d: event %+v does not carry the transition %+v", i, ev, tc.tr)
			}
			if ev.Message != tc.want {
				t.Errorf("step %d: message %q, want %q", i, ev.Message, tc.want)
			}
		}
	}

	// a sensor whose first reading is already bad is news
	e = newEmitter(t)
	if got := e.Decide(trans(0, 85, Unknown, Warning, 80), Prediction{}, false, nil); len(got) != 1 {
		t.Errorf("first reading in warning: %+v, want one event", got)
	}
}

func TestEmitterErrors(t *testing.T) {
	// Repeat is 1 min by default: one event per kind of error per minute
	e := newEmitter(t)
	tr := newTracker(t, th("CPU Temp", none, none, 80, 90), TrackerConfig{})
	count := 0
	for i := range 180 {
		v := 70.0
		if i%2 == 1 {
			v = math.NaN() // every other reading
		}
		if i == 90 {
			v = math.Inf(1) // same kind, different message: still de-duplicated
		}
		u, err := tr.Update(sec(float64(i)), v)
		for _, ev := range e.Decide(u, Prediction{}, false, err) {
			if ev.Kind != KindError || !strings.Contains(ev.Message, `host hv1 sensor "CPU Temp": reading NaN`) {
				t.Errorf("t=%d: unexpected event %+v", i, ev)
			}
			count++
		}
	}
	// NaN at t = 1, 61, 121 s
	if count != 3 {
		t.Errorf("90 NaN readings in 3 minutes gave %d error events, want 3", count)
	}
	// another kind of error is reported even within the minute
	u, err := tr.Update(sec(0), 70)
	if got := e.Decide(u, Prediction{}, false, err); len(got) != 1 || !strings.Contains(got[0].Message, "older than the previous reading") {
		t.Errorf("out-of-order reading: %+v, want one error event", got)
	}
}

func TestEmitterPredictions(t *testing.T) {
	// Defaults: horizon 15 min, confidence ≥ 0.8, a report moves when the crossing shifts by
	// more than 30 s and by more than 25% of the time left, at most once a minute; forgotten
	// after 2 min without a reportable prediction.
	type step struct {
		at      float64 // seconds
		state   State
		in      float64 // predicted seconds to the crossing; 0: no prediction
		conf    float64
		reports bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "reported once, not while it stays put",
			steps: []step{
				{0, OK, 600, 0.9, true},
				{1, OK, 599, 0.9, false},
				{2, OK, 620, 0.95, false}, // 22 s later than reported: not material
				{120, Warning, 480, 0.9, false},
			},
		},
		{
			name: "outside the horizon, too unsure, or already critical: nothing",
			steps: []step{
				{0, OK, 16 * 60, 0.99, false},   // 16 min > 15 min horizon
				{1, OK, 300, 0.79, false},       // below 0.8
				{2, Critical, 300, 0.99, false}, // critical already: the state event says it
				{3, Unknown, 300, 0.99, false},
				{4, OK, 15 * 60, 0.8, true}, // at the limits
			},
		},
		{
			name: "a material change is reported again, but not twice within a minute",
			steps: []step{
				{0, OK, 600, 0.9, true},   // crossing at t = 600 s
				{10, OK, 400, 0.9, false}, // crossing at 410: 190 s earlier, > 30 s and > 25%·400 s, but within a minute
				{60, OK, 350, 0.9, true},  // crossing at 410: still 190 s off the reported 600, a minute later
				{61, OK, 349, 0.9, false}, // at 410 like the report
				// crossing at 500: 90 s off the reported 410, > 30 s but < 25%·(500−121) = 95 s
				{121, OK, 379, 0.9, false},
				// crossing at 560: 150 s off, > 25%·(560−122) = 110 s
				{122, OK, 438, 0.9, true},
			},
		},
		{
			name: "forgotten after 2 minutes without a prediction, then new again",
			steps: []step{
				{0, OK, 600, 0.9, true},
				{1, OK, 0, 0, false},       // the prediction went away
				{100, OK, 500, 0.9, false}, // back within 2 min: same report, not new
				{101, OK, 0, 0, false},
				{221, OK, 0, 0, false},    // 2 min after the last one seen: forgotten
				{222, OK, 378, 0.9, true}, // so this is new
			},
		},
		{
			name: "forgotten once critical",
			steps: []step{
				{0, Warning, 100, 0.9, true},
				{100, Critical, 0, 0, false},
				{200, Warning, 0, 0, false},
				{201, Warning, 300, 0.9, true}, // heating up again: new
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEmitter(t)
			prev := Unknown
			for _, s := range tt.steps {
				tr := trans(s.at, 80, prev, s.state, 0)
				prev = s.state
				p, ok := Prediction{}, s.in > 0
				if ok {
					p = pred(s.at, s.in, s.conf)
				}
				var reports []Event
				for _, ev := range e.Decide(tr, p, ok, nil) {
					if ev.Kind == KindPrediction {
						reports = append(reports, ev)
					}
				}
				if got := len(reports) == 1; got != s.reports || len(reports) > 1 {
					t.Fatalf("t=%vs: %d prediction events %+v, want reported=%v", s.at, len(reports), reports, s.reports)
				}
				if s.reports {
					ev := reports[0]
					if ev.From != s.state || ev.To != Critical || ev.Threshold != 90 || !ev.PredictedAt.Equal(p.At) ||
						ev.Confidence != s.conf || ev.Value != 80 {
						t.Errorf("t=%vs: event %+v does not carry the prediction %+v", s.at, ev, p)
					}
				}
			}
		})
	}
}

func TestMonitorRampEvents(t *testing.T) {
	// Property: a noisy ramp (0.2 °C/s from 60, ±0.5 °C) through warning 80 to critical 90 gives,
	// per seed: ok -> warning and warning -> critical once each (the margin is 2.5 °C against
	// ±0.5 °C of noise), at least one prediction reported at least 30 s before the crossing,
	// and no storm: a handful of prediction events at most over the 150 s.
	thr := th("CPU Temp", none, none, 80, 90)
	for seed := range uint64(30) {
		m, err := NewMonitor("hv1", thr, Config{})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, 1))
		var states []string
		var predictions []Event
		for i := range 200 {
			v := 60 + 0.2*float64(i) + (2*rng.Float64()-1)*0.5
			for _, ev := range m.Observe(sec(float64(i)), v) {
				switch ev.Kind {
				case KindState:
					states = append(states, ev.From.String()+"->"+ev.To.String())
				case KindPrediction:
					predictions = append(predictions, ev)
				default:
					t.Fatalf("seed %d: unexpected %+v", seed, ev)
				}
			}
		}
		if got := strings.Join(states, " "); got != "ok->warning warning->critical" {
			t.Errorf("seed %d: state events %q, want ok->warning warning->critical", seed, got)
		}
		if len(predictions) == 0 || predictions[0].PredictedAt.Sub(predictions[0].At) < 30*time.Second {
			t.Errorf("seed %d: predictions %+v, want one at least 30 s ahead", seed, predictions)
		}
		if len(predictions) > 3 {
			t.Errorf("seed %d: %d prediction events, want at most 3", seed, len(predictions))
		}
		if m.State() != Critical {
			t.Errorf("seed %d: final state %s", seed, m.State())
		}
	}
}

func TestMonitorNoReading(t *testing.T) {
	m, err := NewMonitor("hv1", th("CPU Temp", none, none, 80, 90), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if evs := m.Observe(sec(0), 85); len(evs) != 1 || evs[0].To != Warning {
		t.Fatalf("Observe(85) = %+v", evs)
	}
	if evs := m.NoReading(sec(1)); len(evs) != 1 || evs[0].To != Unknown {
		t.Fatalf("NoReading() = %+v", evs)
	}
	// the same time twice: the tracker takes it, the predictor keeps the first
	if evs := m.Observe(sec(2), 70); len(evs) != 1 || evs[0].To != OK {
		t.Fatalf("Observe(70) = %+v", evs)
	}
	if evs := m.Observe(sec(2), 71); len(evs) != 0 {
		t.Fatalf("Observe(71) at the same time = %+v", evs)
	}
}

func TestEventJSON(t *testing.T) {
	// events go to the server as JSON: states by name, no NaN anywhere
	ev := stateEvent(trans(0, 82, OK, Warning, 80))
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Kind":"state"`, `"From":"ok"`, `"To":"warning"`, `"Threshold":80`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || back.From != OK || back.To != Warning {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if _, err := json.Marshal(Event{From: State(7)}); err == nil {
		t.Error("an invalid state marshalled")
	}
	if s := State(7).String(); s != "State(7)" {
		t.Errorf("State(7).String() = %q", s)
	}
	if s := fmt.Sprint(Unknown, " ", OK, " ", Warning, " ", Critical); s != "unknown ok warning critical" {
		t.Errorf("state names %q", s)
	}
	var st State
	if err := st.UnmarshalText([]byte("bogus")); err == nil {
		t.Error("UnmarshalText(bogus) = nil error")
	}
}

func TestConfigRejects(t *testing.T) {
	thr := th("CPU Temp", none, none, 80, 90)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Tracker: TrackerConfig{MinDwell: -1}}, `host hv1 sensor "CPU Temp": negative minimum dwell -1ns`},
		{Config{Predictor: PredictorConfig{Window: -time.Second}}, `host hv1: sensor "CPU Temp": predictor: negative window -1s`},
		{Config{Predictor: PredictorConfig{Level: 1}}, `host hv1: sensor "CPU Temp": predictor: confidence level 1 is not in (0, 1)`},
		{Config{Events: EventConfig{MinConfidence: 1.5}}, `host hv1 sensor "CPU Temp": events: minimum confidence 1.5 is not in [0, 1]`},
		{Config{Events: EventConfig{Repeat: -time.Minute}}, `host hv1 sensor "CPU Temp": events: negative duration (horizon 0s, min shift 0s, repeat -1m0s, forget 0s)`},
		{Config{Events: EventConfig{Shift: math.NaN()}}, `host hv1 sensor "CPU Temp": events: shift NaN is not a number >= 0`},
	} {
		if _, err := NewMonitor("hv1", thr, tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("NewMonitor(%+v) error = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
