package agent

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/internal/bmc"
	"github.com/drover-hpc/drover/kpi"
	"github.com/drover-hpc/drover/kpi/ingest"
)

// fakeBMC is a BMC with a CPU Temp sensor (upper non-critical 80, critical 90, as on the
// testbed) whose reading the test sets.
type fakeBMC struct {
	mu      sync.Mutex
	temp    float64
	gone    bool          // CPU Temp missing from the poll
	unavail bool          // CPU Temp "unavailable"
	block   chan struct{} // when set, Sensors waits for it (or the context)
	polls   int
}

func fptr(v float64) *float64 { return &v }

func (f *fakeBMC) set(v float64) { f.mu.Lock(); f.temp = v; f.mu.Unlock() }

func (f *fakeBMC) Sensors(ctx context.Context) ([]bmc.Sensor, error) {
	f.mu.Lock()
	block := f.block
	f.polls++
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []bmc.Sensor{{
		Name: "FAN1", Type: "fan", Unit: "RPM", Value: 3000, Available: true, Status: bmc.StatusOK,
		Thresholds: bmc.Thresholds{LowerCritical: fptr(1000), LowerNonCritical: fptr(1500)},
	}}
	if !f.gone {
		s := bmc.Sensor{
			Name: "CPU Temp", Type: "temperature", Unit: "°C", Value: f.temp, Available: !f.unavail, Status: bmc.StatusOK,
			Thresholds: bmc.Thresholds{UpperNonCritical: fptr(80), UpperCritical: fptr(90), UpperNonRecoverable: fptr(100)},
		}
		if f.unavail {
			s.Value, s.Reason, s.Status = 0, "reading unavailable", bmc.StatusUnavailable
		}
		out = append(out, s)
	}
	return out, nil
}

// fakeShipper keeps every batch.
type fakeShipper struct {
	mu      sync.Mutex
	batches []ingest.Batch
	refuse  bool
}

func (s *fakeShipper) Put(b ingest.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse {
		return errors.New("spool full")
	}
	s.batches = append(s.batches, b)
	return nil
}

func (s *fakeShipper) all() []ingest.Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ingest.Batch(nil), s.batches...)
}

// events returns the state events of a sensor shipped so far, in order.
func (s *fakeShipper) events(sensor string, kind health.Kind) []health.Event {
	var out []health.Event
	for _, b := range s.all() {
		for _, e := range b.Events {
			if e.Sensor == sensor && e.Kind == kind {
				out = append(out, e)
			}
		}
	}
	return out
}

// fixtureEnv is a host with the kpi package's /proc fixtures and one hwmon chip.
func fixtureEnv(t *testing.T) kpi.Env {
	t.Helper()
	sys := t.TempDir()
	chip := filepath.Join(sys, "class", "hwmon", "hwmon0")
	if err := os.MkdirAll(chip, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"name": "coretemp\n", "temp1_input": "55000\n", "temp1_label": "Core 0\n"} {
		if err := os.WriteFile(filepath.Join(chip, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return kpi.Env{ProcRoot: filepath.Join("..", "..", "kpi", "testdata", "proc"), SysRoot: sys}
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

func testConfig(t *testing.T, b *fakeBMC) Config {
	return Config{
		Host: "hv1", HealthInterval: 10 * time.Millisecond, Interval: 30 * time.Millisecond,
		Collectors: kpi.Options{Env: fixtureEnv(t), BMC: b, RemoteTimeout: 200 * time.Millisecond},
	}
}

// start runs the agent until the test ends.
func start(t *testing.T, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return 5 s after its context was canceled")
		}
	})
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A CPU heating in steps gives ok → warning → critical against the BMC's own thresholds, each
// event shipped in the batch of the reading that caused it; the KPI schedule ships procfs
// samples alongside.
func TestRunStepsThroughStates(t *testing.T) {
	b := &fakeBMC{temp: 60}
	ship := &fakeShipper{}
	a, err := New(testConfig(t, b), ship, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	start(t, a)
	state := func() health.State { s, _ := a.mon.state(kpi.SourceIPMI, "CPU Temp"); return s }
	waitFor(t, "CPU Temp ok", func() bool { return state() == health.OK })
	b.set(84)
	waitFor(t, "CPU Temp warning at 84", func() bool { return state() == health.Warning })
	b.set(93)
	waitFor(t, "CPU Temp critical at 93", func() bool { return state() == health.Critical })

	got := ship.events("CPU Temp", health.KindState)
	if len(got) != 2 || got[0].From != health.OK || got[0].To != health.Warning || got[1].To != health.Critical {
		t.Fatalf("state events %+v, want ok→warning, warning→critical", got)
	}
	if got[0].Threshold != 80 || got[1].Threshold != 90 || got[0].Host != "hv1" {
		t.Errorf("events %+v, want thresholds 80 and 90 from the BMC, host hv1", got)
	}
	// each event travels with its reading
	for _, bt := range ship.all() {
		for _, e := range bt.Events {
			found := false
			for _, s := range bt.Samples {
				found = found || (s.Sensor == e.Sensor && s.Time.Equal(e.At) && s.Value == e.Value)
			}
			if !found {
				t.Errorf("event %q shipped without the reading that caused it (batch of %d samples)", e.Message, len(bt.Samples))
			}
			if bt.Host != "hv1" {
				t.Errorf("batch host %q", bt.Host)
			}
		}
	}
	waitFor(t, "load1 shipped", func() bool {
		for _, bt := range ship.all() {
			for _, s := range bt.Samples {
				if s.Metric == kpi.MetricLoad1 && s.Value == 0.52 {
					return true
				}
			}
		}
		return false
	})
	st := a.Stats()
	if st.Collectors["ipmi"].Runs == 0 || st.Collectors["loadavg"].Runs == 0 || st.Monitors != 2 {
		t.Errorf("stats %+v: want ipmi and loadavg runs and 2 monitors (CPU Temp, FAN1)", st)
	}
	if st.Collectors["hwmon"].Runs == 0 {
		t.Errorf("hwmon not on the health schedule: %+v", st.Collectors)
	}
}

// The thresholds file replaces the BMC's thresholds for the sensors it names; hwmon sensors are
// checked when the file names them.
func TestThresholdsFileWins(t *testing.T) {
	path := filepath.Join(t.TempDir(), "thresholds.conf")
	if err := os.WriteFile(path, []byte("CPU Temp 10 70\n\"coretemp/Core 0\"  5 50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	table, err := ReadThresholds(path)
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBMC{temp: 75}
	ship := &fakeShipper{}
	cfg := testConfig(t, b)
	cfg.Thresholds = table
	a, err := New(cfg, ship, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	start(t, a)
	// 75 ≥ 70: critical by the file (the BMC's own would say ok: below 80)
	waitFor(t, "CPU Temp critical by the file's 70", func() bool {
		s, _ := a.mon.state(kpi.SourceIPMI, "CPU Temp")
		return s == health.Critical
	})
	// 55 °C ≥ 50: the hwmon core is critical too
	waitFor(t, "Core 0 critical by the file's 50", func() bool {
		s, _ := a.mon.state(kpi.SourceSysfs, "coretemp/Core 0")
		return s == health.Critical
	})
}

// A sensor that becomes unavailable, then vanishes, has no reading: its state goes to unknown,
// the bad reading is counted and never shipped.
func TestUnavailableAndVanished(t *testing.T) {
	b := &fakeBMC{temp: 85}
	ship := &fakeShipper{}
	a, err := New(testConfig(t, b), ship, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	start(t, a)
	state := func() health.State { s, _ := a.mon.state(kpi.SourceIPMI, "CPU Temp"); return s }
	waitFor(t, "warning", func() bool { return state() == health.Warning })
	b.mu.Lock()
	b.unavail = true
	b.mu.Unlock()
	waitFor(t, "unknown when unavailable", func() bool { return state() == health.Unknown })
	errsBefore := a.Stats().SampleErrors
	if errsBefore == 0 {
		t.Error("an unavailable reading was not counted")
	}
	b.mu.Lock()
	b.unavail, b.temp = false, 86
	b.mu.Unlock()
	waitFor(t, "warning again", func() bool { return state() == health.Warning })
	b.mu.Lock()
	b.gone = true
	b.mu.Unlock()
	waitFor(t, "unknown when vanished", func() bool { return state() == health.Unknown })

	got := ship.events("CPU Temp", health.KindState)
	var path []string
	for _, e := range got {
		path = append(path, e.From.String()+"→"+e.To.String())
	}
	want := "unknown→warning warning→unknown unknown→warning warning→unknown"
	if strings.Join(path, " ") != want {
		t.Errorf("state events %v, want %s", path, want)
	}
	for _, bt := range ship.all() {
		for _, s := range bt.Samples {
			if s.Sensor == "CPU Temp" && s.Value == 0 {
				t.Errorf("an unavailable reading was shipped as %v", s)
			}
		}
	}
}

// A BMC that never answers holds back neither the KPI schedule nor the hwmon readings after
// the first cycle's timeout; the agent stops promptly.
func TestSlowBMCDelaysNothingElse(t *testing.T) {
	b := &fakeBMC{temp: 50, block: make(chan struct{})}
	t.Cleanup(func() { close(b.block) })
	ship := &fakeShipper{}
	a, err := New(testConfig(t, b), ship, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	start(t, a)
	waitFor(t, "20 loadavg runs while the BMC hangs", func() bool { return a.Stats().Collectors["loadavg"].Runs >= 20 })
	st := a.Stats()
	ipmi := st.Collectors["ipmi"]
	if ipmi.Outcomes[kpi.OutcomeOK] != 0 || ipmi.Outcomes[kpi.OutcomeTimeout] == 0 {
		t.Errorf("ipmi outcomes %v, want timeouts only", ipmi.Outcomes)
	}
}

// A refused batch is counted, and the agent carries on.
func TestShipperRefuses(t *testing.T) {
	b := &fakeBMC{temp: 50}
	ship := &fakeShipper{refuse: true}
	a, err := New(testConfig(t, b), ship, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	start(t, a)
	waitFor(t, "refusals counted", func() bool { return a.Stats().PutErrors >= 3 })
}

// Partition maintenance runs at start.
func TestMaintainAtStart(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	cfg := testConfig(t, &fakeBMC{temp: 50})
	cfg.Maintain = func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return errors.New("no permission")
		}
		return nil
	}
	cfg.MaintainEvery = 20 * time.Millisecond
	a, err := New(cfg, &fakeShipper{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	start(t, a)
	waitFor(t, "maintenance retried after a failure", func() bool {
		st := a.Stats()
		return st.Maintenance >= 2 && st.MaintenanceErrors == 1
	})
}

// Once reads everything, ships nothing and reports each reading with its health state.
func TestOnce(t *testing.T) {
	b := &fakeBMC{temp: 84}
	a, err := New(testConfig(t, b), nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	rep := a.Once(context.Background())
	var cpu, load *Reading
	for i, r := range rep.Readings {
		switch {
		case r.Sensor == "CPU Temp":
			cpu = &rep.Readings[i]
		case r.Metric == kpi.MetricLoad1:
			load = &rep.Readings[i]
		}
	}
	if cpu == nil || cpu.Collector != "ipmi" || !cpu.Checked || cpu.State != health.Warning || cpu.Value != 84 {
		t.Errorf("CPU Temp reading %+v, want ipmi, checked, warning at 84", cpu)
	}
	if load == nil || load.Collector != "loadavg" || load.Checked {
		t.Errorf("load1 reading %+v, want from loadavg, not checked", load)
	}
	if len(rep.Events) != 1 || rep.Events[0].To != health.Warning {
		t.Errorf("events %+v, want one: CPU Temp found in warning", rep.Events)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Error("Run without a shipper succeeded")
	}
}

func TestReadThresholdsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "thresholds.conf")
	if err := os.WriteFile(bad, []byte("CPU Temp 10 85\nSystem Temp 5 10 95 90\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadThresholds(bad)
	if err == nil || !strings.Contains(err.Error(), bad+":2:") || !strings.Contains(err.Error(), `"System Temp"`) {
		t.Errorf("bad file: %v, want file:2 and the sensor", err)
	}
	if _, err := ReadThresholds(filepath.Join(dir, "nope.conf")); err == nil || !strings.Contains(err.Error(), "nope.conf") {
		t.Errorf("missing file: %v", err)
	}
	if tb, err := ReadThresholds(""); tb != nil || err != nil {
		t.Errorf("no file: %v %v, want nil nil", tb, err)
	}
}

func TestNewRejectsBadHealthSettings(t *testing.T) {
	cfg := testConfig(t, &fakeBMC{})
	cfg.Health.Events.MinConfidence = 2
	if _, err := New(cfg, nil, testLogger(t)); err == nil || !strings.Contains(err.Error(), "confidence") {
		t.Errorf("err = %v, want the bad confidence named", err)
	}
	cfg = testConfig(t, &fakeBMC{})
	cfg.Interval = -time.Second
	if _, err := New(cfg, nil, testLogger(t)); err == nil {
		t.Error("negative interval accepted")
	}
}

// With a node_exporter URL, its scrape replaces procfs and sysfs on the KPI schedule, the health
// schedule keeps the BMC, and the exporter's hwmon temperatures are checked when the thresholds
// file names them.
func TestNodeExporterOption(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`node_load1 0.25
node_hwmon_chip_names{chip="platform_coretemp_0",chip_name="coretemp"} 1
node_hwmon_sensor_label{chip="platform_coretemp_0",label="Core 0",sensor="temp2"} 1
node_hwmon_temp_celsius{chip="platform_coretemp_0",sensor="temp2"} 55
`))
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "thresholds.conf")
	if err := os.WriteFile(path, []byte("\"coretemp/Core 0\" 5 50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	table, err := ReadThresholds(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, &fakeBMC{temp: 50})
	cfg.Collectors.NodeExporterURL = srv.URL + "/metrics"
	cfg.Thresholds = table
	ship := &fakeShipper{}
	a, err := New(cfg, ship, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	hs, ks := a.Collectors()
	if !slices.Equal(hs, []string{"ipmi"}) || !slices.Equal(ks, []string{"node_exporter"}) {
		t.Fatalf("collectors: health %v, kpi %v; want [ipmi] and [node_exporter]", hs, ks)
	}
	start(t, a)
	waitFor(t, "Core 0 critical from the exporter's 55 °C", func() bool {
		s, _ := a.mon.state(kpi.SourceNodeExporter, "coretemp/Core 0")
		return s == health.Critical
	})
	waitFor(t, "load1 from the exporter shipped", func() bool {
		for _, b := range ship.all() {
			for _, s := range b.Samples {
				if s.Metric == kpi.MetricLoad1 && s.Value == 0.25 && s.Source == kpi.SourceNodeExporter {
					return true
				}
			}
		}
		return false
	})
}
