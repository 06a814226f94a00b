package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/drover-hpc/drover/internal/db"
	"github.com/drover-hpc/drover/internal/testenv"
)

// A short run: the last line is the JSON figures, and they match what is in the database.
func TestBenchIngest(t *testing.T) {
	cfg := testbedConfig(t)
	code, out, errs := run(t, "--config", cfg, "bench", "ingest", "--agents", "2", "--hosts", "3", "--batch", "400",
		"--duration", "1s", "--baseline", "300ms", "--reads", "3", "--read-hosts", "50", "--keep-schema")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res benchIngestResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, out)
	}
	if !strings.Contains(errs, "samples/s") {
		t.Errorf("no progress or figures on stderr:\n%s", errs)
	}
	ctx := context.Background()
	pc, err := db.PoolConfig(testenv.Config(t).Database)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if !strings.HasPrefix(res.Schema, "bench_ingest_") {
		t.Fatalf("schema %q", res.Schema)
	}
	schema := pgx.Identifier{res.Schema}.Sanitize()
	defer conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE") //nolint:errcheck

	var rows, batches, hosts int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+schema+`.kpi_samples), (SELECT count(*) FROM `+schema+`.ingest_batches),
		(SELECT count(*) FROM `+schema+`.hypervisors)`).Scan(&rows, &batches, &hosts); err != nil {
		t.Fatal(err)
	}
	// 2 agents x 3 hosts; batches of 400 samples = 10 cycles of 40 series.
	if res.Agents != 2 || res.Hosts != 6 || res.SeriesPerHost != 40 || res.Samples == 0 || res.Samples != res.Batches*400 {
		t.Errorf("figures %+v", res)
	}
	if rows != res.Samples+res.BaselineSamples || rows != res.DBRows || batches != res.Batches || res.BaselineSamples == 0 {
		t.Errorf("database: %d samples, %d batches; JSON: %d + %d baseline samples, %d batches, db_rows %d",
			rows, batches, res.Samples, res.BaselineSamples, res.Batches, res.DBRows)
	}
	if hosts != 50 || res.HostsNowHosts != 50 || res.HostsNowReads != 3 || res.HostsNowP50Ms <= 0 || res.Ratio <= 0 {
		t.Errorf("hypervisors %d; HostsNow figures %+v", hosts, res)
	}
}
