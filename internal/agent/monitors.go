package agent

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/internal/bmc"
	"github.com/drover-hpc/drover/kpi"
)

// thresholdTap passes the BMC's sensor polls through to the IPMI collector and keeps each
// sensor's record (with its thresholds) as first read: once at start, and again whenever a
// sensor appears that was not there before. The thresholds come with every poll, so this costs
// no extra BMC request.
type thresholdTap struct {
	r kpi.SensorReader

	mu    sync.Mutex
	known map[string]bmc.Sensor
}

var _ kpi.SensorReader = (*thresholdTap)(nil)

func newThresholdTap(r kpi.SensorReader) *thresholdTap {
	return &thresholdTap{r: r, known: map[string]bmc.Sensor{}}
}

func (t *thresholdTap) Sensors(ctx context.Context) ([]bmc.Sensor, error) {
	ss, err := t.r.Sensors(ctx)
	if err != nil {
		return ss, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range ss {
		if _, ok := t.known[s.Name]; !ok {
			t.known[s.Name] = s
		}
	}
	return ss, nil
}

// sensor returns the record of a BMC sensor as first read.
func (t *thresholdTap) sensor(name string) (bmc.Sensor, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.known[name]
	return s, ok
}

func (t *thresholdTap) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.known)
}

func (t *thresholdTap) names() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.known))
	for n := range t.known {
		out = append(out, n)
	}
	return out
}

// monitors keeps one health.Monitor per sensor that has a threshold, made when the sensor's
// first reading comes in. It is shared by both schedules.
type monitors struct {
	a *Agent

	mu    sync.Mutex
	byKey map[string]*watch   // by source + "\x00" + sensor
	names map[string]struct{} // every sensor name seen
}

// watch is one sensor: its monitor, or nil when it has no threshold (or an unusable one).
type watch struct {
	sensor string
	m      *health.Monitor
	th     health.Threshold
}

func newMonitors(a *Agent) *monitors {
	return &monitors{a: a, byKey: map[string]*watch{}, names: map[string]struct{}{}}
}

// monitored says whether a sample is a sensor reading health is checked on: a host-level
// sensor, and not a cumulative counter (a RAPL zone or a BMC gives energy next to power under
// the same sensor name; thresholds are about the power).
func monitored(s kpi.Sample) bool {
	return s.Sensor != "" && s.VNode == "" && s.Metric != kpi.MetricEnergyJoules
}

// observe feeds a run's readings to their sensors' monitors and returns the events they cause.
// Sensors the run reports vanished or unavailable get NoReading.
func (ms *monitors) observe(run kpi.Run, samples []kpi.Sample) []health.Event {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var events []health.Event
	at := run.Start
	for _, s := range samples {
		if !monitored(s) {
			continue
		}
		ms.names[s.Sensor] = struct{}{}
		w := ms.get(s.Source, s.Sensor)
		if w.m == nil {
			continue
		}
		events = append(events, w.m.Observe(s.Time, s.Value)...)
		if s.Time.After(at) {
			at = s.Time
		}
	}
	var partial *kpi.PartialError
	if errors.As(run.Err, &partial) {
		for _, se := range partial.Errs {
			if se.Sensor == "" || se.VNode != "" || se.Metric == kpi.MetricEnergyJoules ||
				!errors.Is(se, kpi.ErrVanished) && !errors.Is(se, kpi.ErrUnavailable) {
				continue
			}
			if w, ok := ms.byKey[se.Source+"\x00"+se.Sensor]; ok && w.m != nil {
				events = append(events, w.m.NoReading(at)...)
			}
		}
	}
	return events
}

// get returns the watch of a sensor, making it at its first reading.
func (ms *monitors) get(source, sensor string) *watch {
	k := source + "\x00" + sensor
	if w, ok := ms.byKey[k]; ok {
		return w
	}
	w := &watch{sensor: sensor}
	ms.byKey[k] = w
	a := ms.a
	log := a.log.With().Str("source", source).Str("sensor", sensor).Logger()

	var (
		th  health.Threshold
		err error
		ok  bool
	)
	if s, known := a.bmcSensor(source, sensor); known {
		th, err = a.cfg.Thresholds.For(s)
		ok = err == nil
	} else {
		th, ok = a.cfg.Thresholds.Lookup(sensor)
		th.Sensor = sensor
	}
	switch {
	case err != nil:
		log.Warn().Err(err).Msg("agent: sensor not checked: its thresholds are unusable; give it a line in the thresholds file")
		return w
	case !ok || !th.HasBounds():
		log.Debug().Msg("agent: sensor has no thresholds; recorded, not checked")
		return w
	}
	if h := a.cfg.Hysteresis; h > 0 && th.Hysteresis == nil {
		with := th
		with.Hysteresis = &h
		if err := with.Validate(); err != nil {
			log.Warn().Err(err).Float64("hysteresis", h).Float64("margin", th.Margin()).
				Msg("agent: health.hysteresis is too wide for this sensor; using its default margin")
		} else {
			th = with
		}
	}
	m, err := health.NewMonitor(a.host, th, a.cfg.Health)
	if err != nil {
		log.Warn().Err(err).Msg("agent: sensor not checked")
		return w
	}
	w.m, w.th = m, th
	log.Info().Str("from", th.Source).Str("threshold", describe(th)).Float64("margin", th.Margin()).Msg("agent: checking sensor")
	return w
}

// state returns a sensor's health state, and false when it is not checked.
func (ms *monitors) state(source, sensor string) (health.State, bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	w, ok := ms.byKey[source+"\x00"+sensor]
	if !ok || w.m == nil {
		return health.Unknown, false
	}
	return w.m.State(), true
}

// count returns how many sensors are checked.
func (ms *monitors) count() int {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	n := 0
	for _, w := range ms.byKey {
		if w.m != nil {
			n++
		}
	}
	return n
}

func (ms *monitors) sensorNames() []string {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	out := make([]string, 0, len(ms.names))
	for n := range ms.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// bmcSensor returns the BMC's record of an IPMI sensor.
func (a *Agent) bmcSensor(source, sensor string) (bmc.Sensor, bool) {
	if source != kpi.SourceIPMI || a.bmc == nil {
		return bmc.Sensor{}, false
	}
	return a.bmc.sensor(sensor)
}

// describe writes a threshold's bounds for logs: "warning ≥80, critical ≥90".
func describe(th health.Threshold) string {
	var parts []string
	add := func(name string, lo, hi *float64) {
		switch {
		case lo != nil && hi != nil:
			parts = append(parts, name+" ≤"+ftoa(*lo)+" or ≥"+ftoa(*hi))
		case lo != nil:
			parts = append(parts, name+" ≤"+ftoa(*lo))
		case hi != nil:
			parts = append(parts, name+" ≥"+ftoa(*hi))
		}
	}
	add("warning", th.Warning.Low, th.Warning.High)
	add("critical", th.Critical.Low, th.Critical.High)
	return strings.Join(parts, ", ")
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
