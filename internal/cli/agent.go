package cli

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/internal/agent"
	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/db"
	"github.com/drover-hpc/drover/internal/vnode"
	"github.com/drover-hpc/drover/kpi"
	"github.com/drover-hpc/drover/kpi/ingest"
)

func init() { verbs = append(verbs, (*app).agentCommand) }

func (a *app) agentCommand() *cobra.Command {
	var (
		once bool
		host string
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Collect this hypervisor's KPIs and health into PostgreSQL (--once: print one reading)",
		Long: `drover agent runs on every hypervisor. It reads the health sensors (IPMI, hwmon,
thermal) every agent.health_interval and the other KPIs (procfs, RAPL, libvirt, or a
node_exporter scrape) every agent.interval, checks each sensor against its thresholds
(health.thresholds_file, else the BMC's own) and ships samples and health events to
PostgreSQL, spooling them to agent.spool_dir while the database is away.

With --once it reads everything once and prints a table, without touching the database.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ac := a.cfg.Agent
			if host != "" {
				ac.Host = host
			}
			if once {
				return a.agentOnce(cmd.Context(), ac)
			}
			return a.agentRun(cmd.Context(), ac)
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "read every collector once, print a table and exit (no database)")
	cmd.Flags().StringVar(&host, "host", "", "the hypervisor's name in the hypervisors table (default agent.host, else the host name)")
	return cmd
}

// agentSetup builds the agent's configuration from drover's: thresholds, health settings, and
// the BMC and libvirt of the host when the hypervisors list has it. close releases them.
func (a *app) agentSetup(ac config.Agent) (agent.Config, func(), error) {
	table, err := agent.ReadThresholds(a.cfg.Health.ThresholdsFile)
	if err != nil {
		return agent.Config{}, nil, fmt.Errorf("%w (fix the file, or unset health.thresholds_file to use the BMC's thresholds)", err)
	}
	h := a.cfg.Health
	cfg := agent.Config{
		Host: ac.Host, HealthInterval: ac.HealthInterval, Interval: ac.Interval,
		Thresholds: table, Hysteresis: h.Hysteresis,
		Health: health.Config{
			Tracker: health.TrackerConfig{MinDwell: h.MinDwell},
			Predictor: health.PredictorConfig{
				Window: h.Window, MaxSamples: h.MaxSamples, MinSamples: h.MinSamples, MinSpan: h.MinSpan, Level: h.Level,
			},
			Events: health.EventConfig{Horizon: h.Horizon, MinConfidence: h.MinConfidence, Repeat: h.Repeat},
		},
		Collectors: kpi.Options{NodeExporterURL: ac.NodeExporterURL, DirtyRateEvery: ac.DirtyRateEvery},
	}
	// dirty rates are measured on drover's vnodes only: a calculation samples the guest's pages,
	// which a guest drover does not manage has not agreed to
	cat, err := vnode.NewCatalog(a.cfg.Vnodes, a.cfg.Libvirt.DomainType)
	if err != nil {
		return agent.Config{}, nil, fmt.Errorf("vnodes: %w (run drover check)", err)
	}
	cfg.Collectors.MeasureDomain = cat.Has
	if cfg.Host == "" {
		if cfg.Host, err = os.Hostname(); err != nil {
			return agent.Config{}, nil, fmt.Errorf("no agent.host and no host name from the system (%w): pass --host", err)
		}
	}
	closeAll := func() {}
	hv, ok := a.cfg.Hypervisor(cfg.Host)
	if !ok {
		a.log.Warn().Str("host", cfg.Host).Msg("agent: host not among the configured hypervisors: no IPMI, no libvirt (add it to hypervisors, or pass --host)")
		return cfg, closeAll, nil
	}
	var bmcReader *agent.BMC
	if hv.BMC.Host != "" || hv.BMC.Interface == "open" {
		bmcReader = agent.NewBMC(hv.BMC)
		cfg.Collectors.BMC = bmcReader
	}
	lv := agent.NewLibvirt(hv.Name, hv.URI)
	cfg.Collectors.Libvirt = lv
	closeAll = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if bmcReader != nil {
			_ = bmcReader.Close(ctx)
		}
		_ = lv.Close()
	}
	return cfg, closeAll, nil
}

func (a *app) agentOnce(ctx context.Context, ac config.Agent) error {
	cfg, closeAll, err := a.agentSetup(ac)
	if err != nil {
		return err
	}
	defer closeAll()
	ag, err := agent.New(cfg, nil, a.log)
	if err != nil {
		return err
	}
	rep := ag.Once(ctx)
	tw := newTable(a.stdout, "COLLECTOR\tSENSOR\tMETRIC\tVALUE\tUNIT\tSTATUS\tHEALTH")
	for _, r := range rep.Readings {
		sensor := r.Sensor
		if r.VNode != "" {
			sensor = "vnode " + r.VNode
		}
		state := "-"
		if r.Checked {
			state = r.State.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Collector, dash(sensor), r.Metric, agentValue(r.Value), dash(r.Unit), dash(r.Status), state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var problems []string
	for _, run := range rep.Runs {
		switch run.Outcome {
		case kpi.OutcomeOK:
		case kpi.OutcomeNoData:
			problems = append(problems, fmt.Sprintf("%s: nothing to read on this host (%v)", run.Collector, run.Err))
		default:
			problems = append(problems, fmt.Sprintf("%s: %s after %v: %v", run.Collector, run.Outcome, run.Duration.Round(time.Millisecond), run.Err))
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(a.stdout, "\nproblems:")
		for _, p := range problems {
			fmt.Fprintln(a.stdout, "  "+p)
		}
	}
	if len(rep.Events) > 0 {
		fmt.Fprintln(a.stdout, "\nhealth:")
		for _, e := range rep.Events {
			fmt.Fprintln(a.stdout, "  "+e.Message)
		}
	}
	return nil
}

// agentValue prints whole numbers whole (bytes, RPM) and the rest with four significant digits.
func agentValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func (a *app) agentRun(ctx context.Context, ac config.Agent) error {
	cfg, closeAll, err := a.agentSetup(ac)
	if err != nil {
		return err
	}
	defer closeAll()
	dbc := a.cfg.AgentDatabase()
	pool, err := db.Connect(ctx, dbc)
	if err != nil {
		return fmt.Errorf("%w; the agent connects with agent.database (or database) settings", err)
	}
	defer pool.Close()
	if err := waitForHost(ctx, pool, cfg.Host, a.log); err != nil {
		return err
	}
	if err := os.MkdirAll(ac.SpoolDir, 0o750); err != nil {
		return fmt.Errorf("agent.spool_dir: %w (create it, writable by the agent, or set agent.spool_dir)", err)
	}
	ship, err := ingest.OpenShipper(pool, ingest.ShipperOptions{
		Dir: ac.SpoolDir, MaxMemorySamples: ac.MemoryMaxSamples, MaxDiskBytes: ac.SpoolMaxBytes,
		BatchMaxSamples: ac.BatchMaxSamples, FlushInterval: ac.FlushInterval,
	}, a.log)
	if err != nil {
		return fmt.Errorf("open the spool in %s: %w", ac.SpoolDir, err)
	}
	cfg.Maintain = func(ctx context.Context) error {
		changes, err := ingest.MaintainPartitions(ctx, pool, ac.PartitionsAheadDays, ac.RetentionDays)
		for _, c := range changes {
			a.log.Info().Str("change", c.String()).Msg("agent: kpi_samples partitions")
		}
		return err
	}
	ag, err := agent.New(cfg, ship, a.log)
	if err != nil {
		_ = ship.Close()
		return err
	}
	hs, ks := ag.Collectors()
	a.log.Info().Str("host", ag.Host()).
		Str("health", fmt.Sprintf("%s every %v", strings.Join(hs, ","), ac.HealthInterval)).
		Str("kpi", fmt.Sprintf("%s every %v", strings.Join(ks, ","), ac.Interval)).
		Str("spool", ac.SpoolDir).Str("database", agentDB(dbc)).
		Msg("agent: started")

	sigctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	shipCtx, cancelShip := context.WithCancel(context.Background())
	shipDone := make(chan error, 1)
	go func() { shipDone <- ship.Run(shipCtx) }()
	err = ag.Run(sigctx)
	cancelShip()
	if rerr := <-shipDone; rerr != nil && !errors.Is(rerr, context.Canceled) {
		a.log.Error().Err(rerr).Msg("agent: shipper")
	}
	// deliver what is queued while the database is there, briefly; Close spools the rest
	fctx, cancelFlush := context.WithTimeout(context.Background(), 5*time.Second)
	if ferr := ship.Flush(fctx); ferr != nil {
		a.log.Warn().Err(ferr).Msg("agent: final delivery incomplete; the rest goes to the spool")
	}
	cancelFlush()
	if cerr := ship.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("flush to the spool in %s: %w", ac.SpoolDir, cerr))
	}
	st := ag.Stats()
	a.log.Info().Int("batches", st.Batches).Int("samples", st.Samples).Int("events", st.Events).
		Int("bad_readings", st.SampleErrors).Int("refused", st.PutErrors).Msg("agent: stopped; undelivered batches are in the spool")
	return err
}

// agentDB names the database without its password.
func agentDB(d config.Database) string {
	pc, err := db.PoolConfig(d)
	if err != nil {
		return "?"
	}
	return db.Describe(pc)
}

// waitForHost waits until host is in the hypervisors table: drover server registers the
// configured hypervisors when it starts, and an agent may start first (a boot, a fresh
// database). It says once a minute what it waits for; other errors, or ctx's end, return.
func waitForHost(ctx context.Context, pool *pgxpool.Pool, host string, log zerolog.Logger) error {
	delay := 250 * time.Millisecond
	var said time.Time
	for {
		err := agent.CheckHost(ctx, pool, host)
		if !errors.Is(err, agent.ErrUnknownHost) {
			return err
		}
		if time.Since(said) >= time.Minute {
			log.Warn().Err(err).Msg("agent: waiting for the host to be registered before collecting")
			said = time.Now()
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}
