package agent_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/agent"
	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/db"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/kpi"
	"github.com/drover-hpc/drover/kpi/ingest"
)

// These tests run the agent against the testbed: the real ipmi_sim BMCs of hv1 and hv2 (CPU Temp
// thresholds UNC 80, UCR 90, UNR 100, polled by ipmi_sim from a file every second, whole
// degrees), a freshly migrated schema, and the real Shipper logged in as a drover_agent member.
// (a)+(b) drive hv1 while (c) drives hv2, in parallel, each holding its BMC's lock.

const cpuTemp = "CPU Temp"

// harness is one agent on one testbed hypervisor, shipping into a schema of its own.
type harness struct {
	hv     string
	admin  *pgxpool.Pool // the schema's owner
	store  *store.Store
	agent  *agent.Agent
	schema string
	app    string // the agent pool's application_name; "" when it is the owner's pool
}

// setSensor sets hv's CPU Temp.
func setSensor(t *testing.T, hv string, v float64) {
	testenv.Script(t, "sensor", hv, "cpu", strconv.FormatFloat(v, 'f', 1, 64))
}

// holdBMC locks hv's BMC for the test and puts CPU Temp back to its nominal 45 °C at the end.
func holdBMC(t *testing.T, hv string) {
	testenv.LockBMC(t, hv)
	t.Cleanup(func() { setSensor(t, hv, 45) })
}

// agentPool connects as the testbed's agent role (DROVER_TESTBED_AGENT_DATABASE_URL and
// DROVER_TESTBED_AGENT_PASSWORD_FILE) when there is one, else as a fresh login member of drover_agent, else (no
// CREATEROLE) as the schema's owner. Its connections carry a unique application_name (returned),
// by which their NOTIFYs are told from other tests' and the testbed agents'.
func agentPool(t *testing.T, admin *pgxpool.Pool, schema string) (*pgxpool.Pool, string) {
	ctx := context.Background()
	var pc *pgxpool.Config
	if u := os.Getenv("DROVER_TESTBED_AGENT_DATABASE_URL"); u != "" {
		var err error
		pass := cmp.Or(os.Getenv("DROVER_TESTBED_AGENT_PASSWORD_FILE"), os.Getenv("DROVER_TESTBED_AGENT_DATABASE_PASSWORD_FILE"))
		pc, err = db.PoolConfig(config.Database{URL: u, PasswordFile: pass})
		if err != nil {
			t.Fatal(err)
		}
	} else {
		role, pass, err := testenv.AgentRole(t, admin)
		if err != nil {
			t.Logf("no agent role (%v): the agent connects as the schema's owner", err)
			return admin, ""
		}
		pc = admin.Config().Copy()
		pc.ConnConfig.User, pc.ConnConfig.Password = role, pass
	}
	pc.ConnConfig.RuntimeParams["search_path"] = schema
	app := "drover-agent-test-" + schema
	pc.ConnConfig.RuntimeParams["application_name"] = app
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // registered after the role's drop: runs before it
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("connect as the agent: %v", err)
	}
	return pool, app
}

// startAgent runs an agent for hv (health every second, other KPIs every 10 s) with the real
// Shipper until the test ends.
func startAgent(t *testing.T, hv string) *harness {
	t.Helper()
	cfg := testenv.Config(t)
	schema, admin := testenv.MigratedSchema(t)
	ctx := context.Background()
	st := store.New(admin)
	if err := st.SyncHypervisors(ctx, cfg.Hypervisors); err != nil {
		t.Fatal(err)
	}
	pool, app := agentPool(t, admin, schema)
	if err := agent.CheckHost(ctx, pool, hv); err != nil {
		t.Fatal(err)
	}
	if err := agent.CheckHost(ctx, pool, "no-such-hv"); !errors.Is(err, agent.ErrUnknownHost) {
		t.Error("CheckHost accepted a host that is not in the hypervisors table")
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Str("test", t.Name()).Logger()
	ship, err := ingest.OpenShipper(pool, ingest.ShipperOptions{Dir: t.TempDir(), FlushInterval: 200 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	b := agent.NewBMC(testenv.Hypervisor(t, hv).BMC)
	a, err := agent.New(agent.Config{
		Host: hv, HealthInterval: time.Second, Interval: 10 * time.Second,
		Collectors: kpi.Options{BMC: b},
		Maintain: func(ctx context.Context) error {
			_, err := ingest.MaintainPartitions(ctx, pool, 2, 30)
			return err
		},
	}, ship, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	shipCtx, stopShip := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := ship.Run(shipCtx); err != nil {
			t.Errorf("shipper: %v", err)
		}
	})
	wg.Go(func() {
		if err := a.Run(runCtx); err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	t.Cleanup(func() {
		stop()
		time.Sleep(10 * time.Millisecond)
		stopShip()
		wg.Wait()
		if err := ship.Close(); err != nil {
			t.Errorf("close shipper: %v", err)
		}
		_ = b.Close(context.Background())
		s := a.Stats()
		t.Logf("agent %s: %d batches, %d samples, %d events, %d bad readings, %d refused; ipmi %d runs (mean %v, max %v), shipper %+v",
			hv, s.Batches, s.Samples, s.Events, s.SampleErrors, s.PutErrors,
			s.Collectors["ipmi"].Runs, s.Collectors["ipmi"].Mean(), s.Collectors["ipmi"].Max, ship.Stats())
	})
	return &harness{hv: hv, admin: admin, store: st, agent: a, schema: schema, app: app}
}

// events returns hv's health events of a kind for CPU Temp, oldest first.
func (h *harness) events(t *testing.T, kind string) []store.HealthEvent {
	t.Helper()
	all, err := h.store.HealthEvents(context.Background(), h.hv, time.Time{}, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.HealthEvent
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Sensor == cpuTemp && all[i].Kind == kind {
			out = append(out, all[i])
		}
	}
	return out
}

// waitEvent waits up to timeout for a CPU Temp state event into state to.
func (h *harness) waitEvent(t *testing.T, to string, timeout time.Duration) store.HealthEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range h.events(t, "state") {
			if e.To == to {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CPU Temp event into %s within %v; events: %+v", to, timeout, h.events(t, "state"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cpuSamples returns how many CPU Temp samples of hv reached kpi_samples, and the time of the
// first at or above v (zero if none).
func (h *harness) cpuSamples(t *testing.T, atLeast float64) (int64, time.Time) {
	t.Helper()
	var (
		n     int64
		first *time.Time
	)
	err := h.admin.QueryRow(context.Background(), `
SELECT count(*), min(s.ts) FILTER (WHERE s.value >= $3)
FROM kpi_samples s JOIN kpi_series k ON k.id = s.series_id JOIN hypervisors h ON h.id = k.hypervisor_id
WHERE h.name = $1 AND k.sensor = $2 AND k.metric = 'temp_celsius'`, h.hv, cpuTemp, atLeast).Scan(&n, &first)
	if err != nil {
		t.Fatal(err)
	}
	if first == nil {
		return n, time.Time{}
	}
	return n, *first
}

// notification is a drover_health NOTIFY and when it arrived.
type notification struct {
	ID           int64  `json:"id"`
	HypervisorID int64  `json:"hypervisor_id"`
	Kind         string `json:"kind"`
	Sensor       string `json:"sensor"`
	ToState      string `json:"to_state"`
	pid          uint32 // of the backend that sent it
	at           time.Time
}

// mine reports whether a notification was sent by one of the agent's connections (any, when
// the agent shares the owner's pool).
func (h *harness) mine(t *testing.T, n notification) bool {
	if h.app == "" {
		return true
	}
	var ok bool
	err := h.admin.QueryRow(context.Background(),
		`SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND application_name = $2)`, int32(n.pid), h.app).Scan(&ok)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// listen LISTENs on drover_health on a connection of its own until the test ends.
func listen(t *testing.T, h *harness) func() []notification {
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.ConnectConfig(ctx, h.admin.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "LISTEN drover_health"); err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		got []notification
		wg  sync.WaitGroup
	)
	wg.Go(func() {
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				return
			}
			var p notification
			if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
				t.Errorf("notification %q: %v", n.Payload, err)
				continue
			}
			p.at, p.pid = time.Now(), n.PID
			mu.Lock()
			got = append(got, p)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = conn.Close(context.Background())
	})
	return func() []notification {
		mu.Lock()
		defer mu.Unlock()
		return append([]notification(nil), got...)
	}
}

func TestTestbedAgent(t *testing.T) {
	testenv.Config(t)

	// (c) noise around the warning bound, on hv2, alongside (a) and (b) on hv1
	t.Run("noise", func(t *testing.T) {
		t.Parallel()
		holdBMC(t, "hv2")
		testNoise(t)
	})
	t.Run("hv1", func(t *testing.T) {
		t.Parallel()
		holdBMC(t, "hv1")
		t.Run("steps", testSteps)
		t.Run("ramp", testRamp)
	})
}

// (a) 60 → 84 → 93 °C: ok → warning → critical in health_events, each NOTIFYed on
// drover_health within a few seconds, and the readings in kpi_samples.
func testSteps(t *testing.T) {
	setSensor(t, "hv1", 60)
	time.Sleep(1500 * time.Millisecond) // ipmi_sim reads its poll file every second
	h := startAgent(t, "hv1")
	notes := listen(t, h)

	// the agent's first reading, ok, gives no event (Unknown → OK is not news): wait for it in
	// kpi_samples
	deadline := time.Now().Add(15 * time.Second)
	for n, _ := h.cpuSamples(t, 0); n == 0; n, _ = h.cpuSamples(t, 0) {
		if time.Now().After(deadline) {
			t.Fatal("no CPU Temp sample in kpi_samples 15 s after the agent started")
		}
		time.Sleep(200 * time.Millisecond)
	}
	setSensor(t, "hv1", 84)
	warn := h.waitEvent(t, "warning", 15*time.Second)
	setSensor(t, "hv1", 93)
	crit := h.waitEvent(t, "critical", 15*time.Second)

	states := h.events(t, "state")
	var path []string
	for _, e := range states {
		path = append(path, e.From+"→"+e.To)
	}
	t.Logf("CPU Temp state events: %v", path)
	if len(states) != 2 || states[0].From != "ok" || states[0].To != "warning" || states[1].From != "warning" || states[1].To != "critical" {
		t.Fatalf("state events %v, want [ok→warning warning→critical]", path)
	}
	if v := deref(warn.Value); v != 84 {
		t.Errorf("warning event value %v, want 84", v)
	}
	if v, th := deref(crit.Value), deref(crit.Threshold); v != 93 || th != 90 {
		t.Errorf("critical event value %v threshold %v, want 93 and 90", v, th)
	}

	// every event NOTIFYed within a few seconds of its reading
	for _, e := range states {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var got *notification
			for _, n := range notes() {
				if n.ID == e.ID && n.Kind == "state" && n.Sensor == cpuTemp && n.ToState == e.To && h.mine(t, n) {
					got = &n
					break
				}
			}
			if got != nil {
				lag := got.at.Sub(e.At)
				t.Logf("event %d (%s→%s) NOTIFYed %v after its reading", e.ID, e.From, e.To, lag.Round(time.Millisecond))
				if lag > 5*time.Second || lag < 0 {
					t.Errorf("event %d NOTIFYed %v after its reading, want within 5 s", e.ID, lag)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %d (%s→%s) not NOTIFYed on drover_health; got %+v", e.ID, e.From, e.To, notes())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if n, _ := h.cpuSamples(t, 0); n < 3 {
		t.Errorf("%d CPU Temp samples in kpi_samples, want at least 3", n)
	}
}

// (b) a ramp of 0.2 °C/s from 60 °C towards the critical 90 °C: a prediction announced at least
// 30 s ahead of the crossing, its predicted crossing within ±20 % of the actual lead time.
func testRamp(t *testing.T) {
	const (
		from, to = 60.0, 91.0
		rate     = 0.2 // °C per second
	)
	setSensor(t, "hv1", from)
	time.Sleep(1500 * time.Millisecond)
	h := startAgent(t, "hv1")

	dir := testenv.Config(t).Testbed.Dir
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	ramp := make(chan struct{})
	go func() {
		defer close(ramp)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			v := from + rate*time.Since(start).Seconds()
			// not setSensor: testenv.Script may t.Fatal, which only the test's goroutine may
			cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "scripts", "testbed"), "sensor", "hv1", "cpu", strconv.FormatFloat(min(v, to), 'f', 1, 64))
			cmd.Env = append(os.Environ(), "DROVER_TESTBED_DIR="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("set CPU Temp to %.1f: %v\n%s", v, err, out)
				return
			}
			if v >= to {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-ramp })

	// (91 − 60)/0.2 = 155 s to the top; the crossing of 90 is at about 150 s
	h.waitEvent(t, "critical", 200*time.Second)
	_, crossed := h.cpuSamples(t, 90)
	if crossed.IsZero() {
		t.Fatal("critical event but no sample ≥ 90 in kpi_samples")
	}
	preds := h.events(t, "prediction")
	if len(preds) == 0 {
		t.Fatal("no prediction event before the critical bound was reached")
	}
	ok := false
	for _, p := range preds {
		if p.PredictedAt == nil {
			t.Errorf("prediction %d has no predicted crossing", p.ID)
			continue
		}
		lead := crossed.Sub(p.At)
		predicted := p.PredictedAt.Sub(p.At)
		errRatio := (predicted.Seconds() - lead.Seconds()) / lead.Seconds()
		t.Logf("prediction at %v into the ramp (%.1f °C, confidence %.2f): crossing predicted in %v, actual %v (first sample ≥ 90 at %v): error %+.1f%%",
			p.At.Sub(start).Round(time.Second), deref(p.Value), deref(p.Confidence), predicted.Round(time.Second), lead.Round(time.Second),
			crossed.Sub(start).Round(time.Second), 100*errRatio)
		if lead >= 30*time.Second && errRatio >= -0.2 && errRatio <= 0.2 {
			ok = true
		}
	}
	if !ok {
		t.Errorf("no prediction announced ≥ 30 s before the crossing with its predicted crossing within ±20%% of the actual")
	}
}

// (c) ±2 °C of uniform noise around the warning bound 80 for three minutes: at most one
// transition into warning, none back and forth.
func testNoise(t *testing.T) {
	const (
		center, spread = 80.0, 2.0
		duration       = 3 * time.Minute
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("noise seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 0x5eed))
	setSensor(t, "hv2", 70)
	time.Sleep(1500 * time.Millisecond)
	h := startAgent(t, "hv2")
	time.Sleep(3 * time.Second) // the agent's first readings, ok

	end := time.Now().Add(duration)
	values := map[float64]int{}
	for time.Now().Before(end) {
		v := center + spread*(2*rng.Float64()-1)
		setSensor(t, "hv2", v)
		values[float64(int(v+0.5))]++
		time.Sleep(time.Second)
	}
	time.Sleep(3 * time.Second) // the last readings shipped
	states := h.events(t, "state")
	var path []string
	intoWarning := 0
	for _, e := range states {
		path = append(path, e.From+"→"+e.To)
		if e.To == "warning" {
			intoWarning++
		}
	}
	t.Logf("readings set (rounded): %v; CPU Temp state events: %v", values, path)
	if intoWarning > 1 || len(states) > 1 {
		t.Errorf("state events %v: want at most one transition into warning and no flapping", path)
	}
	if n, _ := h.cpuSamples(t, 0); n < int64(duration/time.Second)/2 {
		t.Errorf("%d CPU Temp samples in kpi_samples over %v, want about one a second", n, duration)
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
