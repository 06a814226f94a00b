package kpi

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "node_exporter", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// byKey indexes samples by metric and sensor.
func byKey(ss []Sample) map[string]Sample {
	out := map[string]Sample{}
	for _, s := range ss {
		out[s.Metric+"|"+s.Sensor] = s
	}
	return out
}

func TestNodeExporterConvert(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := NewNodeExporter("http://unused", nil, nil)

	first, err := c.convert(readFixture(t, "scrape1.prom"), t0)
	if err != nil {
		t.Fatalf("first scrape: %v", err)
	}
	got := byKey(first)
	for key, want := range map[string]float64{
		"load1|": 0.52, "load5|": 0.58, "load15|": 0.59,
		"memory_total_bytes|":     8 << 30,
		"memory_available_bytes|": 6 << 30,
		// PSI totals only: some = waiting, full = stalled
		"pressure_cpu_some_seconds|":    404.847072,
		"pressure_memory_some_seconds|": 1.25,
		"pressure_memory_full_seconds|": 0.5,
		// chip names from node_hwmon_chip_names, labels from node_hwmon_sensor_label
		"temp_celsius|coretemp/Package id 0":       48,
		"temp_celsius|coretemp/Core 0":             45.5,
		"temp_celsius|thermal_thermal_zone0/temp0": 27.8,
		"energy_joules|intel-rapl:0/package-0":     12345.5,
		"energy_joules|intel-rapl:0:0/dram":        2000,
	} {
		s, ok := got[key]
		if !ok {
			t.Errorf("%s missing", key)
			continue
		}
		if math.Abs(s.Value-want) > 1e-9 || s.Source != SourceNodeExporter || !s.Time.Equal(t0) {
			t.Errorf("%s = %v (source %s, time %v), want %v", key, s.Value, s.Source, s.Time, want)
		}
	}
	if s, ok := got["memory_total_bytes|"]; ok && s.Unit != "bytes" {
		t.Errorf("memory unit %q", s.Unit)
	}
	// rates need two scrapes; node_memory_Active_bytes and the scrape metrics are not drover's
	for _, k := range []string{"cpu_busy_ratio|", "power_watts|intel-rapl:0/package-0"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s from one scrape", k)
		}
	}
	if len(first) != 13 {
		t.Errorf("%d samples, want 13: %v", len(first), first)
	}

	second, err := c.convert(readFixture(t, "scrape2.prom"), t0.Add(10*time.Second))
	if err != nil {
		t.Fatalf("second scrape: %v", err)
	}
	got = byKey(second)
	// per CPU: idle +6, iowait +0.5, system +1, user +3 (of which guest +1): elapsed 10.5 s,
	// two CPUs 21 s; busy = (21 − 12 − 1)/21, iowait 1/21, guest 2/21
	for key, want := range map[string]float64{
		"cpu_busy_ratio|":   8.0 / 21,
		"cpu_iowait_ratio|": 1.0 / 21,
		"cpu_steal_ratio|":  0,
		"cpu_guest_ratio|":  2.0 / 21,
		// 500 J and 100 J in 10 s
		"power_watts|intel-rapl:0/package-0": 50,
		"power_watts|intel-rapl:0:0/dram":    10,
	} {
		if s, ok := got[key]; !ok || math.Abs(s.Value-want) > 1e-6 {
			t.Errorf("%s = %v (present %v), want %v", key, s.Value, ok, want)
		}
	}

	// a RAPL counter that went back (wrapped) gives energy but no power
	third, err := c.convert(readFixture(t, "scrape1.prom"), t0.Add(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := byKey(third)["power_watts|intel-rapl:0/package-0"]; ok {
		t.Error("power from a counter that went back")
	}
}

// Malformed lines are per-sample errors naming the line number and text; the good lines count.
func TestNodeExporterMalformed(t *testing.T) {
	text := `# HELP node_load1 1m load average.
node_load1 0.5
node_load5 zero
node_load15{ 0.7
{le="1"} 3
node_memory_MemTotal_bytes 1024 1700000000000
node_memory_MemAvailable_bytes 512 soon
node_hwmon_temp_celsius{chip="c",sensor="temp1"} NaN
node_hwmon_temp_celsius{chip="c",sensor="temp2",note="say \"hi\"\n"} 40
node_hwmon_temp_celsius{chip="c",sensor="temp3"} 900
`
	c := NewNodeExporter("http://unused", nil, nil)
	samples, err := c.convert(text, time.Unix(0, 0))
	var pe *PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PartialError", err)
	}
	msgs := make([]string, len(pe.Errs))
	for i, se := range pe.Errs {
		msgs[i] = se.Error()
		if !errors.Is(se, ErrBadValue) {
			t.Errorf("%q is not ErrBadValue", msgs[i])
		}
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		`read "node_load5 zero": bad value: line 3: value "zero" is not a number`,
		`read "node_load15{ 0.7": bad value: line 4:`,
		`read "{le=\"1\"} 3": bad value: line 5: no metric name`,
		`line 7: timestamp "soon" is not an integer`,
		`"c/temp1" temp_celsius: read "NaN": bad value: not a number`,
		`"c/temp3" temp_celsius: read "900": bad value: 900 celsius is above 200`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("errors do not contain %q:\n%s", want, all)
		}
	}
	if len(pe.Errs) != 6 {
		t.Errorf("%d errors, want 6:\n%s", len(pe.Errs), all)
	}
	got := byKey(samples)
	if got["load1|"].Value != 0.5 || got["memory_total_bytes|"].Value != 1024 || got["temp_celsius|c/temp2"].Value != 40 {
		t.Errorf("good lines lost: %v", samples)
	}
	if len(samples) != 3 {
		t.Errorf("%d samples, want 3: %v", len(samples), samples)
	}
}

func TestParsePromLabels(t *testing.T) {
	l, n, err := parsePromLabels(`{a="x",b="q\"uo\\te\n", c="",} 1`)
	if err != nil {
		t.Fatal(err)
	}
	if l["a"] != "x" || l["b"] != "q\"uo\\te\n" || l["c"] != "" || len(l) != 3 {
		t.Errorf("labels %q", l)
	}
	if n != len(`{a="x",b="q\"uo\\te\n", c="",}`) {
		t.Errorf("read %d bytes", n)
	}
	for _, bad := range []string{`{a="x}`, `{a=x}`, `{="x"}`, `{a="\q"}`} {
		if _, _, err := parsePromLabels(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// Collect scrapes over HTTP; a dead exporter or an error status is the collector's error.
func TestNodeExporterCollect(t *testing.T) {
	var (
		mu     sync.Mutex
		status = http.StatusOK
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if status != http.StatusOK {
			http.Error(w, "broken", status)
			return
		}
		_, _ = w.Write([]byte(readFixture(t, "scrape1.prom")))
	}))
	defer srv.Close()
	c := NewNodeExporter(srv.URL+"/metrics", srv.Client(), nil)
	ss, err := c.Collect(context.Background())
	if err != nil || len(ss) != 13 {
		t.Fatalf("Collect = %d samples, %v", len(ss), err)
	}
	mu.Lock()
	status = http.StatusInternalServerError
	mu.Unlock()
	if _, err := c.Collect(context.Background()); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("HTTP 500: err = %v", err)
	}
	srv.Close()
	if _, err := c.Collect(context.Background()); err == nil || !strings.Contains(err.Error(), "node_exporter_url") {
		t.Errorf("dead exporter: err = %v, want a hint", err)
	}
}

// With a node_exporter URL, its scrape replaces the procfs and sysfs collectors.
func TestNewHostRegistryNodeExporter(t *testing.T) {
	r, err := NewHostRegistry(Options{
		Env: fixtureEnv("proc", "sys"), BMC: &fakeBMC{sensors: simSensors()}, NodeExporterURL: "http://127.0.0.1:9/metrics",
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Names(), []string{"node_exporter", "ipmi"}; !slices.Equal(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}
	r, err = NewHostRegistry(Options{Env: fixtureEnv("proc", "sys"), Select: func(n string) bool { return n == "cpu" || n == "ipmi" }}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Names(); !slices.Equal(got, []string{"cpu"}) {
		t.Errorf("Select: Names = %v, want [cpu] (no BMC given)", got)
	}
}

// Debian's prometheus-node-exporter, started on a loopback port, maps onto drover's metrics.
func TestNodeExporterReal(t *testing.T) {
	bin, err := exec.LookPath("prometheus-node-exporter")
	if err != nil {
		if os.Getenv("DROVER_REQUIRE_TESTBED") == "1" {
			t.Fatal("no prometheus-node-exporter: scripts/testbed install")
		}
		t.Skip("no prometheus-node-exporter (apt-get install prometheus-node-exporter)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(bin, "--web.listen-address="+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	c := NewNodeExporter("http://"+addr+"/metrics", nil, nil)
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Collect(ctx)
		if err == nil {
			break
		}
		var pe *PartialError
		if errors.As(err, &pe) {
			t.Fatalf("a real exporter's scrape has bad lines: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("node_exporter on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1100 * time.Millisecond)
	ss, err := c.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := byKey(ss)
	for _, k := range []string{"load1|", "memory_total_bytes|", "memory_available_bytes|", "cpu_busy_ratio|"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s missing from %d samples", k, len(ss))
		}
	}
	if mt := got["memory_total_bytes|"].Value; mt < 64<<20 {
		t.Errorf("memory_total_bytes %v", mt)
	}
	t.Logf("%d samples from node_exporter at %s", len(ss), addr)
}
