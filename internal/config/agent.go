package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Agent configures `drover agent`, the collector that runs on every hypervisor and ships its
// KPIs and health events to PostgreSQL.
type Agent struct {
	// Host is the hypervisor this agent runs on, as named in the hypervisors table and in
	// hypervisors[].name; empty: the machine's host name.
	Host string `mapstructure:"host"`
	// HealthInterval is how often the health sensors (IPMI, hwmon, thermal) are read; Interval
	// how often everything else is (procfs, RAPL, libvirt, or a node_exporter scrape).
	HealthInterval time.Duration `mapstructure:"health_interval"`
	Interval       time.Duration `mapstructure:"interval"`
	// DirtyRateEvery is how often each vnode's memory dirty rate is measured (a 1 s libvirt
	// calculation, on the KPI schedule, so at most once per Interval); guests that are not
	// drover vnodes are never measured.
	DirtyRateEvery time.Duration `mapstructure:"dirty_rate_every"`
	// SpoolDir keeps batches the database has not taken yet, at most SpoolMaxBytes of them;
	// MemoryMaxSamples bounds the samples held in memory before they go to the spool.
	SpoolDir         string `mapstructure:"spool_dir"`
	SpoolMaxBytes    int64  `mapstructure:"spool_max_bytes"`
	MemoryMaxSamples int    `mapstructure:"memory_max_samples"`
	// BatchMaxSamples caps one database transaction; FlushInterval is the longest a sample
	// waits in memory before it is sent.
	BatchMaxSamples int           `mapstructure:"batch_max_samples"`
	FlushInterval   time.Duration `mapstructure:"flush_interval"`
	// PartitionsAheadDays: daily kpi_samples partitions created ahead of today;
	// RetentionDays: partitions older than this are dropped.
	PartitionsAheadDays int `mapstructure:"partitions_ahead_days"`
	RetentionDays       int `mapstructure:"retention_days"`
	// NodeExporterURL, when set, is a local Prometheus node_exporter's /metrics: it is scraped
	// instead of reading procfs and sysfs.
	NodeExporterURL string `mapstructure:"node_exporter_url"`
	// Database is the agent's own least-privilege role; empty fields take the main database
	// section's (see Config.AgentDatabase).
	Database AgentDatabase `mapstructure:"database"`
}

// AgentDatabase is the agent's database role: its URL and password file.
type AgentDatabase struct {
	URL          string `mapstructure:"url"`
	PasswordFile string `mapstructure:"password_file"`
}

// Health configures how sensor readings become health states, predictions and events. Zero
// values take the health package's defaults (documented there); the thresholds file's own
// per-sensor settings win over these.
type Health struct {
	// ThresholdsFile holds per-sensor thresholds, in the one-line form (`CPU Temp 10 85`) or
	// YAML (.yaml/.yml); empty: every sensor is checked against its BMC's own thresholds.
	ThresholdsFile string `mapstructure:"thresholds_file"`
	// Hysteresis is how far back past a bound a reading must come to leave the state, in the
	// sensor's unit, for thresholds that set none; 0: the per-sensor default rule (a fraction
	// of the sensor's own bands), which suits °C, volts and RPM alike.
	Hysteresis float64 `mapstructure:"hysteresis"`
	// MinDwell: the shortest time in a state before a sensor may move to a better one.
	MinDwell time.Duration `mapstructure:"min_dwell"`
	// Window, MaxSamples, MinSamples, MinSpan and Level tune the trend predictor (Theil–Sen
	// over a sliding window; Level is its confidence level, in (0, 1)).
	Window     time.Duration `mapstructure:"window"`
	MaxSamples int           `mapstructure:"max_samples"`
	MinSamples int           `mapstructure:"min_samples"`
	MinSpan    time.Duration `mapstructure:"min_span"`
	Level      float64       `mapstructure:"level"`
	// Horizon and MinConfidence: predictions further ahead or less sure are not reported;
	// Repeat: the least time between two reports of a moved prediction or of an error.
	Horizon       time.Duration `mapstructure:"horizon"`
	MinConfidence float64       `mapstructure:"min_confidence"`
	Repeat        time.Duration `mapstructure:"repeat"`
}

// AgentDatabase is the database the agent connects to: the main database section with the
// agent's own URL and password file when they are set.
func (c *Config) AgentDatabase() Database {
	d := c.Database
	if c.Agent.Database.URL != "" {
		d.URL = c.Agent.Database.URL
		d.PasswordFile = c.Agent.Database.PasswordFile
	} else if c.Agent.Database.PasswordFile != "" {
		d.PasswordFile = c.Agent.Database.PasswordFile
	}
	return d
}

func agentDefaults() Agent {
	return Agent{
		HealthInterval:      time.Second,
		Interval:            10 * time.Second,
		DirtyRateEvery:      time.Minute,
		SpoolDir:            "/var/lib/drover/spool",
		SpoolMaxBytes:       1 << 30,
		MemoryMaxSamples:    100_000,
		BatchMaxSamples:     5_000,
		FlushInterval:       2 * time.Second,
		PartitionsAheadDays: 7,
		RetentionDays:       30,
	}
}

// validateAgent checks the agent and health sections.
func (c *Config) validateAgent(bad func(key, format string, args ...any)) {
	a := c.Agent
	if a.HealthInterval <= 0 {
		bad("agent.health_interval", "must be positive, got %v", a.HealthInterval)
	}
	if a.Interval <= 0 {
		bad("agent.interval", "must be positive, got %v", a.Interval)
	}
	if a.DirtyRateEvery < time.Second {
		bad("agent.dirty_rate_every", "must be at least 1s (one calculation lasts 1 s), got %v", a.DirtyRateEvery)
	}
	if a.SpoolDir == "" || !filepath.IsAbs(a.SpoolDir) {
		bad("agent.spool_dir", "%q is not an absolute directory path", a.SpoolDir)
	}
	if a.SpoolMaxBytes < 0 {
		bad("agent.spool_max_bytes", "must not be negative, got %d", a.SpoolMaxBytes)
	}
	if a.MemoryMaxSamples < 1 {
		bad("agent.memory_max_samples", "must be at least 1, got %d", a.MemoryMaxSamples)
	}
	if a.BatchMaxSamples < 1 {
		bad("agent.batch_max_samples", "must be at least 1, got %d", a.BatchMaxSamples)
	}
	if a.FlushInterval <= 0 {
		bad("agent.flush_interval", "must be positive, got %v", a.FlushInterval)
	}
	if a.PartitionsAheadDays < 1 {
		bad("agent.partitions_ahead_days", "must be at least 1, got %d", a.PartitionsAheadDays)
	}
	if a.RetentionDays < 1 {
		bad("agent.retention_days", "must be at least 1, got %d", a.RetentionDays)
	}
	if a.NodeExporterURL != "" {
		if u, err := url.Parse(a.NodeExporterURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("agent.node_exporter_url", "%q is not an http(s) URL, e.g. http://127.0.0.1:9100/metrics", a.NodeExporterURL)
		}
	}
	if a.Database.PasswordFile != "" && a.Database.URL == "" && c.Database.URL == "" {
		bad("agent.database.url", "missing: a password file needs a URL here or in database.url")
	}

	h := c.Health
	if h.ThresholdsFile != "" {
		if st, err := os.Stat(h.ThresholdsFile); err != nil {
			bad("health.thresholds_file", "%v", err)
		} else if st.IsDir() {
			bad("health.thresholds_file", "%s is a directory, not a thresholds file", h.ThresholdsFile)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"health.min_dwell", h.MinDwell}, {"health.window", h.Window}, {"health.min_span", h.MinSpan},
		{"health.horizon", h.Horizon}, {"health.repeat", h.Repeat}} {
		if d.v < 0 {
			bad(d.key, "must not be negative, got %v", d.v)
		}
	}
	if !(h.Hysteresis >= 0) {
		bad("health.hysteresis", "must not be negative, got %v", h.Hysteresis)
	}
	if h.MaxSamples < 0 || h.MinSamples < 0 {
		bad("health", "max_samples and min_samples must not be negative (got %d, %d)", h.MaxSamples, h.MinSamples)
	}
	if h.MaxSamples > 0 && h.MinSamples > h.MaxSamples {
		bad("health.min_samples", "%d is more than max_samples %d", h.MinSamples, h.MaxSamples)
	}
	if !(h.Level >= 0 && h.Level < 1) {
		bad("health.level", "%v is not in (0, 1), e.g. 0.99", h.Level)
	}
	if !(h.MinConfidence >= 0 && h.MinConfidence <= 1) {
		bad("health.min_confidence", "%v is not in [0, 1]", h.MinConfidence)
	}
}

// FieldError is a value that is well-typed but meaningless, and the dotted key it is under.
type FieldError struct {
	Key string
	Msg string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Key, e.Msg) }
