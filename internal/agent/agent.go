package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/kpi"
	"github.com/drover-hpc/drover/kpi/ingest"
)

// Defaults of Config's zero fields.
const (
	DefaultHealthInterval = time.Second
	DefaultInterval       = 10 * time.Second
	DefaultMaintainEvery  = time.Hour
)

// HealthCollectors are the collectors read on the health schedule: the sensors that have
// thresholds. Every other collector is read on the slower KPI schedule.
var HealthCollectors = []string{"ipmi", "hwmon", "thermal"}

// Config is what an Agent needs. The CLI builds it from config.Agent and config.Health.
type Config struct {
	// Host is the hypervisor's name in the hypervisors table; empty: os.Hostname.
	Host string
	// HealthInterval and Interval are the periods of the health and KPI schedules.
	HealthInterval time.Duration
	Interval       time.Duration
	// Collectors says which collectors run and where they read (kpi.Options.Select is set by
	// the agent: leave it nil).
	Collectors kpi.Options
	// Thresholds are the configured per-sensor thresholds (health.Parse of the thresholds
	// file; see ReadThresholds); nil: every BMC sensor is checked against its BMC's own.
	Thresholds *health.Table
	// Hysteresis, when positive, is the margin of thresholds that set none; a sensor for which
	// it is too wide keeps the default rule (logged).
	Hysteresis float64
	// Health tunes the monitors.
	Health health.Config
	// Maintain, when set, runs once at start and every MaintainEvery (hourly by default):
	// partition maintenance (ingest.MaintainPartitions).
	Maintain      func(ctx context.Context) error
	MaintainEvery time.Duration
}

// Shipper takes the agent's batches; *ingest.Shipper is one. Put must not block.
type Shipper interface {
	Put(b ingest.Batch) error
}

var _ Shipper = (*ingest.Shipper)(nil)

// Agent collects one hypervisor's KPIs and health. Build it with New, then Run it, or call Once.
type Agent struct {
	cfg  Config
	host string
	ship Shipper
	log  zerolog.Logger

	healthReg, kpiReg *kpi.Registry
	bmc               *thresholdTap // nil without a BMC

	mon *monitors

	mu    sync.Mutex
	stats Stats
	// failing are the readings that failed in their collector's last run, to log a reading's
	// trouble when it starts and when it ends rather than at every cycle
	failing   map[string]string
	outcomes  map[string]kpi.Outcome // last outcome per collector, for the same purpose
	unmatched bool                   // the thresholds no sensor matches have been logged
}

// ReadThresholds reads and parses a thresholds file (one-line form, or YAML for .yaml/.yml);
// its errors name the file and line. An empty path gives a nil table.
func ReadThresholds(path string) (*health.Table, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("thresholds file: %w", err)
	}
	t, err := health.Parse(path, data)
	if err != nil {
		return nil, fmt.Errorf("thresholds file: %w", err)
	}
	return t, nil
}

// New builds an agent shipping to ship (nil for an agent that is only asked for Once). It
// checks the health settings and builds the two collector registries.
func New(cfg Config, ship Shipper, log zerolog.Logger) (*Agent, error) {
	if cfg.HealthInterval < 0 || cfg.Interval < 0 || cfg.MaintainEvery < 0 {
		return nil, fmt.Errorf("agent: negative interval (health %v, kpi %v, maintenance %v)", cfg.HealthInterval, cfg.Interval, cfg.MaintainEvery)
	}
	cfg.HealthInterval = cmp.Or(cfg.HealthInterval, DefaultHealthInterval)
	cfg.Interval = cmp.Or(cfg.Interval, DefaultInterval)
	cfg.MaintainEvery = cmp.Or(cfg.MaintainEvery, DefaultMaintainEvery)
	host := cfg.Host
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("agent: no host name configured (agent.host) and none from the system: %w", err)
		}
		host = h
	}
	// a monitor the health settings cannot make would fail at the first reading: check now
	if _, err := health.NewMonitor(host, health.Threshold{Sensor: "check"}, cfg.Health); err != nil {
		return nil, fmt.Errorf("agent: health settings: %w", err)
	}
	log = log.With().Str("host", host).Logger()
	a := &Agent{
		cfg: cfg, host: host, ship: ship, log: log,
		failing: map[string]string{}, outcomes: map[string]kpi.Outcome{},
	}
	a.stats.Collectors = map[string]CollectorStats{}

	opts := cfg.Collectors
	if opts.BMC != nil {
		a.bmc = newThresholdTap(opts.BMC)
		opts.BMC = a.bmc
	}
	// the registries log every bad run at warning level, each cycle; the agent logs a
	// collector's trouble when it starts and ends instead
	quiet := log.Level(zerolog.ErrorLevel)
	isHealth := func(name string) bool { return slices.Contains(HealthCollectors, name) }
	var err error
	opts.Select = isHealth
	if a.healthReg, err = kpi.NewHostRegistry(opts, quiet); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	opts.Select = func(name string) bool { return !isHealth(name) }
	if a.kpiReg, err = kpi.NewHostRegistry(opts, quiet); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.mon = newMonitors(a)
	return a, nil
}

// Host is the hypervisor the agent reports as.
func (a *Agent) Host() string { return a.host }

// Collectors lists the collectors of the health and the KPI schedule.
func (a *Agent) Collectors() (healthSchedule, kpiSchedule []string) {
	return a.healthReg.Names(), a.kpiReg.Names()
}

// Run collects until ctx is done: the health schedule, the KPI schedule and partition
// maintenance, each on its own goroutine. The BMC's thresholds are read first (a BMC that does
// not answer is logged; its sensors get monitors once it does). Run returns when every
// goroutine has stopped, after the last batch was handed to the Shipper; the caller then
// closes the Shipper, which keeps what it could not deliver in its spool.
func (a *Agent) Run(ctx context.Context) error {
	if a.ship == nil {
		return errors.New("agent: no shipper: Run needs somewhere to send the samples")
	}
	a.readBMCThresholds(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.schedule(ctx, "health", a.healthReg, a.cfg.HealthInterval) })
	wg.Go(func() { a.schedule(ctx, "kpi", a.kpiReg, a.cfg.Interval) })
	if a.cfg.Maintain != nil {
		wg.Go(func() { a.maintain(ctx) })
	}
	wg.Wait()
	return nil
}

// readBMCThresholds reads the BMC's sensors once for their thresholds.
func (a *Agent) readBMCThresholds(ctx context.Context) {
	if a.bmc == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, a.remoteTimeout())
	defer cancel()
	if _, err := a.bmc.Sensors(cctx); err != nil {
		a.log.Warn().Err(err).Msg("agent: BMC thresholds not read; they will be when the BMC answers")
		return
	}
	a.log.Info().Int("sensors", a.bmc.count()).Msg("agent: BMC sensors and thresholds read")
}

func (a *Agent) remoteTimeout() time.Duration {
	if t := a.cfg.Collectors.RemoteTimeout; t > 0 {
		return t
	}
	return kpi.DefaultRemoteTimeout
}

// schedule runs reg's collectors every period until ctx is done. A cycle that outlasts the
// period skips the ticks it missed.
func (a *Agent) schedule(ctx context.Context, name string, reg *kpi.Registry, period time.Duration) {
	if len(reg.Names()) == 0 {
		return
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		start := time.Now()
		a.cycle(ctx, reg)
		if reg == a.healthReg && ctx.Err() == nil {
			a.logUnmatched()
		}
		if took := time.Since(start); took > period {
			missed := int(took / period)
			a.mu.Lock()
			a.stats.SkippedTicks += missed
			a.mu.Unlock()
			a.log.Debug().Str("schedule", name).Dur("took", took).Int("skipped", missed).Msg("agent: cycle outlasted its period")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cycle runs every collector of reg once and ships each one's samples, with the health events
// they cause, as soon as it returns.
func (a *Agent) cycle(ctx context.Context, reg *kpi.Registry) {
	reg.CollectFunc(ctx, func(run kpi.Run, samples []kpi.Sample) {
		if run.Outcome == kpi.OutcomeCanceled {
			return
		}
		a.record(run)
		events := a.mon.observe(run, samples)
		if len(samples) == 0 && len(events) == 0 {
			return
		}
		err := a.ship.Put(ingest.Batch{Host: a.host, Samples: samples, Events: events})
		a.mu.Lock()
		a.stats.Batches++
		a.stats.Samples += len(samples)
		a.stats.Events += len(events)
		if err != nil {
			a.stats.PutErrors++
		}
		a.mu.Unlock()
		if err != nil {
			a.log.Error().Err(err).Str("collector", run.Collector).Int("samples", len(samples)).Int("events", len(events)).
				Msg("agent: the shipper refused a batch")
		}
	})
}

// maintain runs partition maintenance now and every MaintainEvery.
func (a *Agent) maintain(ctx context.Context) {
	t := time.NewTicker(a.cfg.MaintainEvery)
	defer t.Stop()
	for {
		err := a.cfg.Maintain(ctx)
		if ctx.Err() != nil {
			return
		}
		a.mu.Lock()
		a.stats.Maintenance++
		if err != nil {
			a.stats.MaintenanceErrors++
		}
		a.mu.Unlock()
		if err != nil {
			a.log.Error().Err(err).Dur("retry_in", a.cfg.MaintainEvery).Msg("agent: partition maintenance failed")
		} else {
			a.log.Debug().Msg("agent: partitions maintained")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// record keeps a run's figures and logs it: every run at debug level, a collector's trouble at
// warning level when its outcome changes, each bad reading when it starts failing and when it
// reads again.
func (a *Agent) record(run kpi.Run) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cs := a.stats.Collectors[run.Collector]
	cs.add(run)
	a.stats.Collectors[run.Collector] = cs

	a.log.Debug().Str("collector", run.Collector).Str("outcome", string(run.Outcome)).Dur("took", run.Duration).
		Int("samples", run.Samples).Int("problems", run.Problems).Msg("agent: collector run")

	prev, seen := a.outcomes[run.Collector]
	a.outcomes[run.Collector] = run.Outcome
	switch {
	case run.Outcome == kpi.OutcomeOK || run.Outcome == kpi.OutcomePartial:
		if seen && prev != kpi.OutcomeOK && prev != kpi.OutcomePartial && prev != kpi.OutcomeNoData {
			a.log.Info().Str("collector", run.Collector).Str("was", string(prev)).Msg("agent: collector reads again")
		}
	case run.Outcome == kpi.OutcomeNoData:
		if !seen || prev != run.Outcome {
			a.log.Debug().Str("collector", run.Collector).Err(run.Err).Msg("agent: nothing to read")
		}
	case !seen || prev != run.Outcome:
		a.log.Warn().Str("collector", run.Collector).Str("outcome", string(run.Outcome)).Dur("took", run.Duration).
			Err(run.Err).Msg("agent: collector failed; logged again when this changes")
	}

	// per-reading errors
	var partial *kpi.PartialError
	now := map[string]string{}
	if errors.As(run.Err, &partial) {
		for _, se := range partial.Errs {
			a.stats.SampleErrors++
			k := run.Collector + "\x00" + se.VNode + "\x00" + se.Sensor + "\x00" + se.Metric
			msg := se.Err.Error()
			now[k] = msg
			if a.failing[k] != msg {
				a.log.Warn().Str("collector", run.Collector).Str("sensor", se.Sensor).Str("metric", se.Metric).
					Str("vnode", se.VNode).Str("read", se.Value).Err(se.Err).Msg("agent: reading left out")
			}
		}
	}
	if run.Outcome != kpi.OutcomeOK && run.Outcome != kpi.OutcomePartial {
		return // no news about its readings
	}
	prefix := run.Collector + "\x00"
	for k := range a.failing {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			if _, still := now[k]; !still {
				delete(a.failing, k)
				f := strings.SplitN(k, "\x00", 4)
				a.log.Info().Str("collector", run.Collector).Str("sensor", f[2]).Str("metric", f[3]).Str("vnode", f[1]).
					Msg("agent: reading good again")
			}
		}
	}
	for k, msg := range now {
		a.failing[k] = msg
	}
}

// logUnmatched logs, once after the first health cycle, the configured thresholds that name no
// sensor of this host: a misspelt sensor name shows up there.
func (a *Agent) logUnmatched() {
	if a.cfg.Thresholds == nil {
		return
	}
	a.mu.Lock()
	done := a.unmatched
	a.unmatched = true
	a.mu.Unlock()
	if done {
		return
	}
	names := a.mon.sensorNames()
	if a.bmc != nil {
		names = append(names, a.bmc.names()...)
	}
	for _, th := range a.cfg.Thresholds.Unmatched(names) {
		a.log.Warn().Str("sensor", th.Sensor).Str("where", th.Source).
			Msg("agent: the thresholds file names a sensor this host does not have (yet); check its spelling")
	}
}
