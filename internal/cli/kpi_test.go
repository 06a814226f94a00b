package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
)

// kpiEnv points drover at the testbed's configuration with a schema of its own, seeded with:
//
//	hv1: "CPU Temp" 71 °C read 30 s ago, load1 1.5, wall power 100 W every 10 s over the last
//	     30 minutes, load1 samples of 2 every minute over the last 30 minutes; health warning
//	     (CPU Temp), a state event ok -> warning 10 minutes ago and a prediction of the critical
//	     bound 90 in 6 minutes (confidence 0.9): 90 - 71 = 19 °C of headroom.
//	hv2: "CPU Temp" 40 °C, no load, no events.
//	vn1 (2 vCPUs) runs on hv1 since 25 minutes ago; job 7 ran on it from 20 to 10 minutes ago:
//	100 W × 600 s = 60 kJ (vn1 is alone on hv1).
func kpiEnv(t *testing.T) string {
	t.Helper()
	schema, pool := testenv.MigratedSchema(t)
	useSchema(t, schema)
	cfg := testbedConfig(t)
	ctx := context.Background()
	if err := store.New(pool).SyncHypervisors(ctx, testenv.Config(t).Hypervisors); err != nil {
		t.Fatal(err)
	}
	seed := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%v\n%s", err, sql)
		}
	}
	series := func(host, source, metric, sensor string) int {
		t.Helper()
		var id int
		if err := pool.QueryRow(ctx, `INSERT INTO kpi_series (hypervisor_id, source, metric, sensor)
			VALUES ((SELECT id FROM hypervisors WHERE name = $1), $2, $3, $4) RETURNING id`, host, source, metric, sensor).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	latest := func(id int, v float64) {
		t.Helper()
		seed(`INSERT INTO kpi_latest (series_id, ts, value) VALUES ($1, now() - interval '30 seconds', $2)`, id, v)
	}
	latest(series("hv1", "ipmi", "temp_celsius", "CPU Temp"), 71)
	load := series("hv1", "procfs", "load1", "")
	latest(load, 1.5)
	seed(`INSERT INTO kpi_samples (series_id, ts, value)
		SELECT $1, ts, 2 FROM generate_series(now() - interval '30 minutes', now() - interval '1 minute', interval '1 minute') ts`, load)
	seed(`INSERT INTO kpi_samples (series_id, ts, value)
		SELECT $1, ts, 100 FROM generate_series(now() - interval '30 minutes', now(), interval '10 seconds') ts`,
		series("hv1", "ipmi", "power_watts", "Pwr Consumption"))
	latest(series("hv2", "ipmi", "temp_celsius", "CPU Temp"), 40)
	seed(`INSERT INTO health_events (hypervisor_id, ts, sensor, kind, from_state, to_state, value, threshold, message)
		VALUES ((SELECT id FROM hypervisors WHERE name = 'hv1'), now() - interval '10 minutes', 'CPU Temp', 'state',
			'ok', 'warning', 81, 80, 'hv1 "CPU Temp": ok -> warning: 81 reached the warning bound 80')`)
	seed(`INSERT INTO health_events (hypervisor_id, ts, sensor, kind, from_state, to_state, value, threshold,
			predicted_breach_at, confidence, message)
		VALUES ((SELECT id FROM hypervisors WHERE name = 'hv1'), now() - interval '1 minute', 'CPU Temp', 'prediction',
			'warning', 'critical', 70, 90, now() + interval '6 minutes', 0.9, 'hv1 "CPU Temp": expected to reach 90')`)
	seed(`INSERT INTO host_health (hypervisor_id, state, worst_sensor) SELECT id, 'warning', 'CPU Temp' FROM hypervisors WHERE name = 'hv1'
		ON CONFLICT (hypervisor_id) DO UPDATE SET state = excluded.state, worst_sensor = excluded.worst_sensor`)
	seed(`INSERT INTO vnodes (name, cpus, state, hypervisor_id) SELECT 'vn1', 2, 'running', id FROM hypervisors WHERE name = 'hv1'`)
	seed(`INSERT INTO vnode_events (vnode, ts, event, hypervisor_id)
		SELECT 'vn1', now() - interval '25 minutes', 'resume', id FROM hypervisors WHERE name = 'hv1'`)
	seed(`INSERT INTO jobs (job_id, name, user_name, nodes, state, started_at, ended_at)
		VALUES (7, 'sim', 'alice', '{vn1}', 'completed', now() - interval '20 minutes', now() - interval '10 minutes')`)
	return cfg
}

// tableRow returns the fields (split on two or more spaces) of the first line of out starting with prefix.
func tableRow(t *testing.T, out, prefix string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			return columns.Split(strings.TrimSpace(line), -1)
		}
	}
	t.Fatalf("no line starting with %q in:\n%s", prefix, out)
	return nil
}

func wantFields(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func TestHostsCommand(t *testing.T) {
	cfg := kpiEnv(t)
	code, out, errs := run(t, "--config", cfg, "hosts")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	row := tableRow(t, out, "hv1 ")
	// HOST STATE HEALTH WORST SENSOR HOTTEST SENSOR TEMP HEADROOM AGE LOAD1 VNODES; the age is about 30s.
	if len(row) != 10 || !strings.HasSuffix(row[7], "s") {
		t.Fatalf("hv1 row = %q", row)
	}
	row[7] = "age"
	wantFields(t, "hv1", row, "hv1", "active", "warning", "CPU Temp", "CPU Temp", "71.0", "19.0", "age", "1.50", "1")
	row = tableRow(t, out, "hv2 ")
	if len(row) == 10 {
		row[7] = "age"
	}
	wantFields(t, "hv2", row, "hv2", "active", "unknown", "-", "CPU Temp", "40.0", "-", "age", "-", "0")

	code, out, errs = run(t, "--config", cfg, "hosts", "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d\n%s%s", code, out, errs)
	}
	var rows []hostRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rows) != 2 || rows[0].Host != "hv1" || rows[0].Hottest == nil || rows[0].Hottest.Celsius != 71 ||
		rows[0].Hottest.Headroom == nil || *rows[0].Hottest.Headroom != 19 || rows[0].Load1 == nil || *rows[0].Load1 != 1.5 ||
		rows[1].Load1 != nil || rows[1].Hottest.Critical != nil {
		t.Errorf("--json:\n%s", out)
	}
}

func TestHealthCommand(t *testing.T) {
	cfg := kpiEnv(t)
	code, out, errs := run(t, "--config", cfg, "health")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "predicted critical breaches within 15m0s:") {
		t.Errorf("no breaches heading:\n%s", out)
	}
	// HOST SENSOR IN AT(date time) NOW CRITICAL CONFIDENCE: about 6 minutes left.
	row := tableRow(t, out, "hv1 ")
	if len(row) != 7 || !strings.HasPrefix(row[2], "5m") && !strings.HasPrefix(row[2], "6m") {
		t.Fatalf("breach row = %q", row)
	}
	wantFields(t, "breach", []string{row[0], row[1], row[4], row[5], row[6]}, "hv1", "CPU Temp", "71", "90", "0.90")
	// Events newest first: the prediction, then the state change with its reading and bound.
	lines := strings.Split(out, "\n")
	var events []string
	for _, l := range lines {
		if f := columns.Split(l, -1); len(f) == 8 && f[1] == "hv1" {
			events = append(events, f[3]+" "+f[4]+" "+f[5]+" "+f[6])
		}
	}
	if strings.Join(events, "; ") != "prediction warning -> critical 70 90; state ok -> warning 81 80" {
		t.Errorf("events = %q\n%s", events, out)
	}

	code, out, _ = run(t, "--config", cfg, "health", "hv2", "--json")
	if code != 0 {
		t.Fatalf("hv2 --json: exit %d", code)
	}
	var doc struct {
		Breaches []breachJSON `json:"predicted_breaches"`
		Events   []eventJSON  `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Breaches) != 0 || len(doc.Events) != 0 {
		t.Errorf("hv2 has no breach and no event: %v\n%s", err, out)
	}
	code, out, _ = run(t, "--config", cfg, "health", "--json", "--limit", "1")
	if err := json.Unmarshal([]byte(out), &doc); code != 0 || err != nil || len(doc.Breaches) != 1 || len(doc.Events) != 1 ||
		doc.Events[0].Kind != "prediction" || doc.Breaches[0].Current == nil || *doc.Breaches[0].Current != 71 {
		t.Errorf("--json --limit 1: exit %d, %v\n%s", code, err, out)
	}
}

func TestKpiCommand(t *testing.T) {
	cfg := kpiEnv(t)
	code, out, errs := run(t, "--config", cfg, "kpi", "hv1", "load1", "--since", "10m", "--step", "5m", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	var pts []pointJSON
	if err := json.Unmarshal([]byte(out), &pts); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// One sample a minute, the newest a minute old. The buckets start on multiples of 5 minutes
	// and reach back 10 to 15 minutes: 2 or 3 buckets, 9 to 15 samples (the one 10 minutes old is
	// at the edge), all 2.
	var n int64
	for _, p := range pts {
		n += p.Samples
		if p.Avg != 2 || p.Min != 2 || p.Max != 2 || p.Source != "procfs" || p.Sensor != "" || p.Bucket.Unix()%300 != 0 {
			t.Errorf("point %+v", p)
		}
	}
	if len(pts) < 2 || len(pts) > 3 || n < 9 || n > 15 {
		t.Errorf("%d buckets, %d samples:\n%s", len(pts), n, out)
	}
	code, out, _ = run(t, "--config", cfg, "kpi", "hv1", "load1", "--since", "10m", "--step", "10m")
	// TIME (date and time, one field) SERIES UNIT AVG MIN MAX SAMPLES
	if row := tableRow(t, out, "20"); code != 0 || len(row) != 7 || row[1] != "procfs" || row[2] != "-" || row[3] != "2" {
		t.Errorf("table: exit %d row %q\n%s", code, row, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"kpi", "hv9", "load1"}, `drover: no hypervisor named "hv9" (known: hv1, hv2)`},
		{[]string{"kpi", "hv1", "load"}, `drover: hv1 has no metric "load" (it has: load1, power_watts, temp_celsius)`},
		{[]string{"kpi", "hv1", "temp_celsius", "--sensor", "Core 0"}, `drover: hv1 temp_celsius has no sensor "Core 0" (it has: "CPU Temp")`},
		{[]string{"kpi", "hv2", "load1"}, `drover: hv2 has no metric "load1" (it has: temp_celsius)`},
		{[]string{"kpi", "hv1", "load1", "--step", "0s"}, "drover: --step must be a positive duration such as 30m or 2h, got 0s"},
		{[]string{"kpi", "hv1", "load1", "--since", "ages"}, `invalid argument "ages" for "--since" flag`},
		{[]string{"kpi", "hv1", "load1", "--since", "48h", "--step", "1s"}, "172800 buckets, more than 100000: choose a larger step"},
		{[]string{"kpi", "hv1"}, "accepts 2 arg(s), received 1"},
		{[]string{"health", "hv9"}, `drover: no hypervisor named "hv9" (known: hv1, hv2)`},
		{[]string{"health", "--limit", "0"}, "drover: --limit must be at least 1, got 0"},
		{[]string{"energy", "abc"}, `drover: job id "abc" is not a positive number`},
		{[]string{"energy", "8"}, "drover: no job 8 recorded: drover records the jobs its Slurm hooks see"},
		{[]string{"energy", "7", "--since", "5m"}, "drover: no job 7 recorded that ran since"},
	} {
		code, out, errs := run(t, append([]string{"--config", cfg}, tc.args...)...)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q (stdout %q)", tc.args, code, errs, tc.want, out)
		}
	}
}

func TestEnergyCommand(t *testing.T) {
	cfg := kpiEnv(t)
	code, out, errs := run(t, "--config", cfg, "energy")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	// JOB NAME USER STATE STARTED(date time) TOOK HYPERVISORS VNODES KWH KJ POWERED:
	// 100 W × 600 s = 60 kJ = 0.0167 kWh.
	row := tableRow(t, out, "7 ")
	if len(row) != 11 {
		t.Fatalf("row = %q\n%s", row, out)
	}
	wantFields(t, "job 7", append(row[:4:4], row[5:]...),
		"7", "sim", "alice", "completed", "10m0s", "hv1", "1", "0.0167", "60.0", "100%")
	code, out, _ = run(t, "--config", cfg, "energy", "7", "--json")
	var rows []energyJSON
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 1 || !closeEnough(rows[0].Joules, 60000) ||
		!closeEnough(rows[0].VnodeSeconds, 600) || !closeEnough(rows[0].PoweredSeconds, 600) { // sums of float seconds
		t.Errorf("energy 7 --json: exit %d, %v\n%s", code, err, out)
	}
}

func closeEnough(a, b float64) bool { return a-b < 1e-6*b && b-a < 1e-6*b }
