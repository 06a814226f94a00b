package ingest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/internal/db"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/sql/migrations"
)

// privatePG is a PostgreSQL cluster of the test's own, so that the test may stop it without
// disturbing the shared testbed server other packages' tests use.
type privatePG struct {
	t          *testing.T
	bin, data  string
	port       int
	asPostgres bool // root: run the server as user postgres (it refuses to run as root)
}

func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if testenv.Required() {
			t.Fatal("no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)")
		}
		t.Skip("no PostgreSQL server binaries under /usr/lib/postgresql")
	}
	sort.Strings(bins)
	p := &privatePG{t: t, bin: filepath.Dir(bins[len(bins)-1]), asPostgres: os.Getuid() == 0}
	base, err := os.MkdirTemp("/tmp", "drover-outage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if p.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root without a postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	p.data = filepath.Join(base, "data")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	if out, err := p.run("initdb", "-D", p.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nmax_connections = 30\nshared_buffers = 64MB\nlogging_collector = off\n", p.port, base)
	f, err := os.OpenFile(filepath.Join(p.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(conf); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p.start()
	t.Cleanup(p.kill)
	return p
}

func (p *privatePG) run(prog string, args ...string) ([]byte, error) {
	name := filepath.Join(p.bin, prog)
	var cmd *exec.Cmd
	if p.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	return cmd.CombinedOutput()
}

func (p *privatePG) start() {
	p.t.Helper()
	if out, err := p.run("pg_ctl", "-D", p.data, "-l", filepath.Join(filepath.Dir(p.data), "postgres.log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(filepath.Dir(p.data), "postgres.log"))
		p.t.Fatalf("start private postgres: %v\n%s\n%s", err, out, log)
	}
}

// crash stops the server as a power cut would: no checkpoint, clients cut off.
func (p *privatePG) crash() {
	p.t.Helper()
	if out, err := p.run("pg_ctl", "-D", p.data, "-m", "immediate", "-w", "-t", "60", "stop"); err != nil {
		p.t.Fatalf("stop private postgres: %v\n%s", err, out)
	}
}

// kill stops the server, if it runs, by the PID in its postmaster.pid.
func (p *privatePG) kill() {
	b, err := os.ReadFile(filepath.Join(p.data, "postmaster.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 1 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGQUIT) // immediate shutdown
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *privatePG) url(user string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", user, p.port)
}

// PostgreSQL stopped for 60 s under load: every sample and event arrives exactly once after it
// returns. DROVER_OUTAGE_SECONDS shortens the outage while working on this test.
func TestOutageLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute-long outage: not in -short mode")
	}
	outage := 60 * time.Second
	if s := os.Getenv("DROVER_OUTAGE_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		outage = time.Duration(n) * time.Second
	}
	pg := startPrivatePG(t)
	ctx := context.Background()

	admin, err := pgxpool.New(ctx, pg.url("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ms, err := db.LoadMigrations(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.NewMigrator(admin, ms).Up(ctx); err != nil {
		t.Fatal(err)
	}
	const hosts = 4
	for i := 1; i <= hosts; i++ {
		if _, err := admin.Exec(ctx, `INSERT INTO hypervisors (name, uri) VALUES ($1, 'qemu:///x')`, fmt.Sprintf("hv%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Exec(ctx, `CREATE ROLE agent LOGIN IN ROLE drover_agent`); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, pg.url("agent"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := MaintainPartitions(ctx, pool, 2, 30); err != nil {
		t.Fatal(err)
	}

	s, err := OpenShipper(pool, ShipperOptions{
		Dir: t.TempDir(), MaxMemorySamples: 20_000, BatchMaxSamples: 2_000,
		FlushInterval: 200 * time.Millisecond, RetryMin: 100 * time.Millisecond, RetryMax: 2 * time.Second,
	}, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(runCtx) }()
	defer func() {
		stopRun()
		<-runDone
		s.Close()
	}()

	// The load: every 20 ms a cycle of 40 series for each of 4 hosts (8,000 samples/s), with a
	// state event per host every 25 cycles. Simulated time advances a second per cycle.
	var mu sync.Mutex
	var putSamples, putEvents int64
	var putErr error
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for c := 0; ; c++ {
			select {
			case <-stopLoad:
				return
			case <-tick.C:
			}
			at := t0.Add(time.Duration(c) * time.Second)
			for h := 1; h <= hosts; h++ {
				host := fmt.Sprintf("hv%d", h)
				b := Batch{Host: host, Samples: cycleSamples(40, at, float64(c%100))}
				if c%25 == h {
					from, to := health.OK, health.Warning
					if (c/25)%2 == 1 {
						from, to = to, from
					}
					b.Events = []health.Event{stateEvent(host, "CPU Temp", at, from, to, 80)}
				}
				if err := s.Put(b); err != nil {
					mu.Lock()
					putErr = err
					mu.Unlock()
					return
				}
				mu.Lock()
				putSamples += int64(len(b.Samples))
				putEvents += int64(len(b.Events))
				mu.Unlock()
			}
		}
	}()
	put := func() (int64, int64) {
		mu.Lock()
		defer mu.Unlock()
		if putErr != nil {
			t.Fatalf("Put: %v", putErr)
		}
		return putSamples, putEvents
	}

	time.Sleep(5 * time.Second)
	before, _ := put()
	t.Logf("load running: %d samples put; stopping PostgreSQL (immediate) for %s", before, outage)
	pg.crash()
	time.Sleep(outage)
	during, _ := put()
	st := s.Stats()
	t.Logf("after %s of outage: %d samples put during it; queued %d (memory %d, spool %d batches, %d bytes)",
		outage, during-before, st.QueuedSamples, st.MemorySamples, st.SpooledBatches, st.SpooledBytes)
	if !st.Down || st.SpooledBatches == 0 {
		t.Errorf("during the outage: down %v, %d batches spooled; want down and spooling", st.Down, st.SpooledBatches)
	}
	pg.start()
	restarted := time.Now()
	time.Sleep(2 * time.Second)
	close(stopLoad)
	<-loadDone
	samples, events := put()

	deadline := time.Now().Add(3 * time.Minute)
	for {
		st = s.Stats()
		if st.QueuedSamples == 0 && st.MemoryBatches == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not drained 3 minutes after PostgreSQL came back: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	drain := time.Since(restarted)
	t.Logf("drained %s after restart: %d samples and %d events put in all; delivered %d batches, %d skipped as already delivered; spool peak %d bytes; dropped %d, rejected %d",
		drain.Round(time.Millisecond), samples, events, st.Delivered, st.Duplicates, st.SpoolPeakBytes, st.Dropped, st.Rejected)

	// a batch whose commit reply was lost in the outage is found delivered on its retry: its
	// samples count as duplicates, already in the database (the row counts below check that)
	if st.Dropped != 0 || st.Rejected != 0 || st.DeliveredSamples+st.DuplicateSamples != samples {
		t.Errorf("stats %+v: want nothing dropped or rejected and all %d samples delivered", st, samples)
	}
	count := func(sql string) int64 {
		var n int64
		if err := admin.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM kpi_samples`); n != samples {
		t.Errorf("kpi_samples holds %d rows, %d were put", n, samples)
	}
	if n := count(`SELECT count(*) FROM (SELECT series_id, ts FROM kpi_samples GROUP BY 1, 2 HAVING count(*) > 1) d`); n != 0 {
		t.Errorf("%d (series, ts) pairs stored more than once", n)
	}
	if n := count(`SELECT count(*) FROM health_events`); n != events {
		t.Errorf("health_events holds %d rows, %d were put", n, events)
	}
	if n := count(`SELECT count(*) FROM (SELECT hypervisor_id, ts FROM health_events GROUP BY 1, 2 HAVING count(*) > 1) d`); n != 0 {
		t.Errorf("%d events stored more than once", n)
	}
	// one row per batch: those delivered, and those whose commit landed though its reply was lost
	// (found on the retry and skipped)
	if n := count(`SELECT count(*) FROM ingest_batches`); n != st.Delivered+st.Duplicates {
		t.Errorf("ingest_batches holds %d rows; %d batches delivered and %d found already delivered", n, st.Delivered, st.Duplicates)
	}
	if during-before == 0 {
		t.Error("no samples were put during the outage: the test tested nothing")
	}
}
