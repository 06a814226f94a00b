package kpi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SourceNodeExporter is the source of samples scraped from a Prometheus node_exporter.
const SourceNodeExporter = "node_exporter"

// maxScrapeBytes bounds a /metrics response; node_exporter's is some 100 kB on a large host.
const maxScrapeBytes = 16 << 20

// NodeExporter scrapes a local Prometheus node_exporter's /metrics (the text exposition format)
// instead of reading procfs and sysfs itself, and maps what it finds onto drover's metric names,
// so the rest of drover sees the same KPIs either way:
//
//	node_load1, node_load5, node_load15          → load1, load5, load15
//	node_cpu_seconds_total{cpu,mode}             → cpu_busy_ratio, cpu_iowait_ratio, cpu_steal_ratio
//	node_cpu_guest_seconds_total{cpu,mode}       → cpu_guest_ratio   (rates: from the second scrape on)
//	node_memory_<Field>_bytes                    → memory_total_bytes, memory_available_bytes, memory_free_bytes,
//	                                               memory_buffers_bytes, memory_cached_bytes, swap_total_bytes, swap_free_bytes
//	node_pressure_<res>_waiting_seconds_total    → pressure_<res>_some_seconds
//	node_pressure_<res>_stalled_seconds_total    → pressure_<res>_full_seconds
//	node_hwmon_temp_celsius{chip,sensor}         → temp_celsius, sensor "<chip name>/<label>"
//	node_rapl_<zone>_joules_total{index,path}    → energy_joules and power_watts (from the second scrape on),
//	                                               sensor "intel-rapl:0/package-0"
//
// node_exporter gives no PSI averages (only the stall totals) and names hwmon chips by their
// device path: a chip's name comes from node_hwmon_chip_names, its sensors' labels from
// node_hwmon_sensor_label, when the exporter has them. Samples carry the source
// SourceNodeExporter. A malformed line is a per-sample error naming its line number and text;
// the rest of the scrape is used.
type NodeExporter struct {
	url    string
	client *http.Client
	now    func() time.Time

	mu   sync.Mutex
	cpu  cpuTimes // the previous scrape's CPU counters, in microseconds
	have bool
	rapl map[string]raplPrev // by sensor
}

var _ Collector = (*NodeExporter)(nil)

type raplPrev struct {
	joules float64
	at     time.Time
}

// NewNodeExporter returns a collector scraping url (http://127.0.0.1:9100/metrics) with client
// (http.DefaultClient when nil); now stamps the samples (time.Now when nil).
func NewNodeExporter(url string, client *http.Client, now func() time.Time) *NodeExporter {
	if client == nil {
		client = http.DefaultClient
	}
	if now == nil {
		now = time.Now
	}
	return &NodeExporter{url: url, client: client, now: now, rapl: map[string]raplPrev{}}
}

// Collect scrapes the exporter once.
func (c *NodeExporter) Collect(ctx context.Context) ([]Sample, error) {
	text, err := c.scrape(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.convert(text, c.now())
}

func (c *NodeExporter) scrape(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return "", fmt.Errorf("node_exporter %s: %w", c.url, err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := c.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("node_exporter %s: %w (is prometheus-node-exporter running? check agent.node_exporter_url)", c.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("node_exporter %s: HTTP %s", c.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxScrapeBytes+1))
	if err != nil {
		return "", fmt.Errorf("node_exporter %s: read: %w", c.url, err)
	}
	if len(body) > maxScrapeBytes {
		return "", fmt.Errorf("node_exporter %s: response larger than %d bytes", c.url, maxScrapeBytes)
	}
	return string(body), nil
}

// promSample is one sample line of the exposition format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
	line   int
}

// promLineError is a line of the exposition that is not a sample, a comment or blank.
type promLineError struct {
	line int
	text string
	err  error
}

// parseExposition parses Prometheus's text exposition format (version 0.0.4): one sample per
// line, `name{label="value",…} value [timestamp]`, with # comments (HELP, TYPE) and blank lines
// between. Lines it cannot read are returned apart; the others are still good.
func parseExposition(text string) ([]promSample, []promLineError) {
	var (
		out  []promSample
		errs []promLineError
	)
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parsePromLine(line)
		if err != nil {
			errs = append(errs, promLineError{line: i + 1, text: line, err: err})
			continue
		}
		s.line = i + 1
		out = append(out, s)
	}
	return out, errs
}

func parsePromLine(line string) (promSample, error) {
	var s promSample
	i := 0
	for i < len(line) && isNameChar(line[i], i == 0) {
		i++
	}
	if i == 0 {
		return s, errors.New("no metric name")
	}
	s.name = line[:i]
	rest := line[i:]
	if strings.HasPrefix(rest, "{") {
		labels, n, err := parsePromLabels(rest)
		if err != nil {
			return s, err
		}
		s.labels = labels
		rest = rest[n:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 || len(fields) > 2 {
		return s, fmt.Errorf("want a value (and an optional timestamp) after %s, got %d fields", s.name, len(fields))
	}
	v, err := parsePromValue(fields[0])
	if err != nil {
		return s, err
	}
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return s, fmt.Errorf("timestamp %q is not an integer", fields[1])
		}
	}
	s.value = v
	return s, nil
}

func isNameChar(b byte, first bool) bool {
	return b == '_' || b == ':' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || !first && b >= '0' && b <= '9'
}

// parsePromLabels parses `{a="x",b="y\"z"}` at the start of s and returns the labels and the
// length of the text it read.
func parsePromLabels(s string) (map[string]string, int, error) {
	labels := map[string]string{}
	i := 1 // past {
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == ',') {
			i++
		}
		if i < len(s) && s[i] == '}' {
			return labels, i + 1, nil
		}
		start := i
		for i < len(s) && isNameChar(s[i], i == start) {
			i++
		}
		if i == start {
			return nil, 0, fmt.Errorf("bad label name at %q", clip(s[start:]))
		}
		name := s[start:i]
		if i+1 >= len(s) || s[i] != '=' || s[i+1] != '"' {
			return nil, 0, fmt.Errorf("label %s: want =\"value\"", name)
		}
		i += 2
		var v strings.Builder
		for {
			if i >= len(s) {
				return nil, 0, fmt.Errorf("label %s: value not closed", name)
			}
			ch := s[i]
			if ch == '"' {
				i++
				break
			}
			if ch == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					v.WriteByte('\n')
				case '\\', '"':
					v.WriteByte(s[i])
				default:
					return nil, 0, fmt.Errorf("label %s: bad escape \\%c", name, s[i])
				}
				i++
				continue
			}
			v.WriteByte(ch)
			i++
		}
		labels[name] = v.String()
	}
}

func clip(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

func parsePromValue(f string) (float64, error) {
	switch f {
	case "+Inf", "Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q is not a number", f)
	}
	return v, nil
}

// nodeMemory maps node_memory_*_bytes onto drover's memory metrics.
var nodeMemory = map[string]string{
	"node_memory_MemTotal_bytes":     MetricMemoryTotalBytes,
	"node_memory_MemAvailable_bytes": MetricMemoryAvailableBytes,
	"node_memory_MemFree_bytes":      MetricMemoryFreeBytes,
	"node_memory_Buffers_bytes":      MetricMemoryBuffersBytes,
	"node_memory_Cached_bytes":       MetricMemoryCachedBytes,
	"node_memory_SwapTotal_bytes":    MetricSwapTotalBytes,
	"node_memory_SwapFree_bytes":     MetricSwapFreeBytes,
}

var nodeLoad = map[string]string{"node_load1": MetricLoad1, "node_load5": MetricLoad5, "node_load15": MetricLoad15}

// convert maps one scrape onto drover's samples. c.mu must be held.
func (c *NodeExporter) convert(text string, at time.Time) ([]Sample, error) {
	samples, lineErrs := parseExposition(text)
	b := newBatch(SourceNodeExporter, at, 64)
	for _, e := range lineErrs {
		b.fail("", "", e.text, fmt.Errorf("%w: line %d: %w", ErrBadValue, e.line, e.err))
	}

	var (
		cpuSec   = map[string]float64{} // by mode, summed over CPUs
		guestSec float64
		cpuSeen  bool
		chips    = map[string]string{} // chip → chip_name
		labels   = map[[2]string]string{}
		temps    []promSample
		rapl     []promSample
	)
	for _, s := range samples {
		switch n := s.name; {
		case nodeLoad[n] != "":
			b.add(nodeLoad[n], "", qLoad, s.value, "", "")
		case nodeMemory[n] != "":
			b.add(nodeMemory[n], "", qBytes, s.value, "", "")
		case n == "node_cpu_seconds_total":
			cpuSec[s.labels["mode"]] += s.value
			cpuSeen = true
		case n == "node_cpu_guest_seconds_total":
			guestSec += s.value
		case strings.HasPrefix(n, "node_pressure_") && strings.HasSuffix(n, "_seconds_total"):
			res, kind, ok := pressureName(n)
			if ok {
				b.add("pressure_"+res+"_"+kind+"_seconds", "", qSeconds, s.value, "", "")
			}
		case n == "node_hwmon_chip_names":
			chips[s.labels["chip"]] = s.labels["chip_name"]
		case n == "node_hwmon_sensor_label":
			labels[[2]string{s.labels["chip"], s.labels["sensor"]}] = s.labels["label"]
		case n == "node_hwmon_temp_celsius":
			temps = append(temps, s)
		case strings.HasPrefix(n, "node_rapl_") && strings.HasSuffix(n, "_joules_total"):
			rapl = append(rapl, s)
		}
	}
	for _, s := range temps {
		chip := s.labels["chip"]
		if name := chips[chip]; name != "" {
			chip = name
		}
		sensor := s.labels["sensor"]
		if l := labels[[2]string{s.labels["chip"], sensor}]; l != "" {
			sensor = l
		}
		b.add(MetricTempCelsius, chip+"/"+sensor, qCelsius, s.value, "", "")
	}
	c.convertRAPL(b, rapl, at)
	if cpuSeen {
		c.convertCPU(b, cpuSec, guestSec)
	}
	return b.result()
}

// pressureName splits node_pressure_<res>_<waiting|stalled>_seconds_total into the resource and
// PSI's some (waiting) or full (stalled).
func pressureName(n string) (res, kind string, ok bool) {
	mid := strings.TrimSuffix(strings.TrimPrefix(n, "node_pressure_"), "_seconds_total")
	res, what, found := strings.Cut(mid, "_")
	if !found {
		return "", "", false
	}
	switch what {
	case "waiting":
		return res, "some", true
	case "stalled":
		return res, "full", true
	}
	return "", "", false
}

// convertCPU turns the CPU counters (seconds, summed over CPUs) into the ratios since the
// previous scrape, with the procfs collector's formula (cpuUtilisation).
func (c *NodeExporter) convertCPU(b *batch, sec map[string]float64, guest float64) {
	us := func(v float64) uint64 {
		if !(v > 0) || math.IsInf(v, 0) {
			return 0
		}
		return uint64(math.Round(v * 1e6))
	}
	cur := cpuTimes{
		user: us(sec["user"]), nice: us(sec["nice"]), system: us(sec["system"]), idle: us(sec["idle"]),
		iowait: us(sec["iowait"]), irq: us(sec["irq"]), softirq: us(sec["softirq"]), steal: us(sec["steal"]),
		guest: us(guest),
	}
	prev, have := c.cpu, c.have
	if !have {
		c.cpu, c.have = cur, true
		return
	}
	r, ok := cpuUtilisation(prev, cur)
	if !ok {
		return // keep the older counters
	}
	c.cpu = cur
	b.add(MetricCPUBusyRatio, "", qRatio, r.busy, "", "")
	b.add(MetricCPUIOWaitRatio, "", qRatio, r.iowait, "", "")
	b.add(MetricCPUStealRatio, "", qRatio, r.steal, "", "")
	b.add(MetricCPUGuestRatio, "", qRatio, r.guest, "", "")
}

// convertRAPL gives each zone's energy, and its power since the previous scrape. A counter
// that went back (it wrapped; node_exporter reports the raw counter) gives no power this time.
func (c *NodeExporter) convertRAPL(b *batch, zones []promSample, at time.Time) {
	seen := map[string]bool{}
	for _, s := range zones {
		zone := strings.TrimSuffix(strings.TrimPrefix(s.name, "node_rapl_"), "_joules_total")
		if zone == "package" {
			zone += "-" + s.labels["index"]
		}
		dir := path.Base(s.labels["path"])
		if s.labels["path"] == "" {
			dir = "intel-rapl:" + s.labels["index"]
		}
		sensor := dir + "/" + zone
		b.add(MetricEnergyJoules, sensor, qJoules, s.value, "", "")
		if math.IsNaN(s.value) || math.IsInf(s.value, 0) || s.value < 0 {
			continue
		}
		seen[sensor] = true
		prev, ok := c.rapl[sensor]
		c.rapl[sensor] = raplPrev{joules: s.value, at: at}
		if dt := at.Sub(prev.at).Seconds(); ok && dt > 0 && s.value >= prev.joules {
			b.add(MetricPowerWatts, sensor, qWatts, (s.value-prev.joules)/dt, "", "")
		}
	}
	for k := range c.rapl {
		if !seen[k] {
			delete(c.rapl, k)
		}
	}
}
