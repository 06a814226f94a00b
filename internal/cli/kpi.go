package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-hpc/drover/internal/store"
)

// The operator's KPI verbs: hosts, health, kpi and energy read the dashboard queries of
// sql/queries/kpi.sql through the store and print a table, or JSON with --json.

func init() {
	verbs = append(verbs, (*app).hostsCommand, (*app).healthCommand, (*app).kpiCommand, (*app).energyCommand)
}

// withStore opens the database for a read-only KPI verb and runs fn.
func (a *app) withStore(ctx context.Context, fn func(*store.Store) error) error {
	st, closeDB, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	return fn(st)
}

// positive checks a duration flag.
func positive(flag string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("--%s must be a positive duration such as 30m or 2h, got %v", flag, d)
	}
	return nil
}

func writeKPIJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable starts a table on w in drover's layout, columns two spaces apart, with its header row
// (tab-separated). Flush prints it.
func newTable(w io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

func kpiTime(t time.Time) string { return t.Local().Format(time.DateTime) }

// kpiAge prints a duration to the second below an hour, to the minute above: "45s", "3m10s",
// "2h5m0s".
func kpiAge(d time.Duration) string {
	if d < time.Hour {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func kpiNum(p *float64, format string) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf(format, *p)
}

// ---- drover hosts

// hostRow is one hypervisor in `drover hosts`.
type hostRow struct {
	Host        string   `json:"host"`
	State       string   `json:"state"`
	Health      string   `json:"health"`
	WorstSensor string   `json:"worst_sensor"`
	Vnodes      int64    `json:"vnodes"`
	VnodeMiB    int64    `json:"vnode_mib"`
	Hottest     *hottest `json:"hottest"` // null without temperature readings
	Load1       *float64 `json:"load1"`   // null without a load1 series
}

type hottest struct {
	Sensor     string    `json:"sensor"`
	Celsius    float64   `json:"celsius"`
	ReadAt     time.Time `json:"read_at"`
	AgeSeconds float64   `json:"age_seconds"`
	Critical   *float64  `json:"critical_celsius"`
	Headroom   *float64  `json:"headroom_celsius"`
}

func (a *app) hostsCommand() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "hosts",
		Short: "List the hypervisors: state, health, hottest temperature, load and vnodes",
		Long: `hosts prints one row per hypervisor: its state in drover (active, draining…), its health (the
worst state of its sensors, with that sensor), its hottest temperature reading now with the sensor
and how far below its critical bound it is (when a health event gave the bound), its newest
1-minute load average and how many vnodes it runs. The temperature comes from the newest value of
each host-level temp_celsius series; AGE says how old that reading is.`,
		Example: "  drover hosts\n  drover hosts --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), func(st *store.Store) error {
				rows, err := hostRows(cmd.Context(), st)
				if err != nil {
					return err
				}
				if asJSON {
					return writeKPIJSON(a.stdout, rows)
				}
				return printHosts(a.stdout, rows)
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return c
}

func hostRows(ctx context.Context, st *store.Store) ([]hostRow, error) {
	hosts, err := st.HostsOverview(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]hostRow, 0, len(hosts))
	if len(hosts) == 0 {
		return rows, nil
	}
	temps, err := st.HottestHosts(ctx, len(hosts))
	if err != nil {
		return nil, err
	}
	hot := map[string]store.HostTemp{}
	for _, t := range temps {
		hot[t.Host] = t
	}
	load, err := st.LatestByHost(ctx, "load1")
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		r := hostRow{Host: h.Host, State: h.State, Health: h.Health, WorstSensor: h.WorstSensor, Vnodes: h.Vnodes, VnodeMiB: h.VnodeMemMiB}
		if t, ok := hot[h.Host]; ok {
			r.Hottest = &hottest{Sensor: t.Sensor, Celsius: t.Celsius, ReadAt: t.At, AgeSeconds: t.Age.Seconds(),
				Critical: t.Critical, Headroom: t.Headroom}
		}
		if l, ok := load[h.Host]; ok {
			r.Load1 = &l.Value
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func printHosts(w io.Writer, rows []hostRow) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no hypervisors recorded: add them to the configuration's hypervisors list")
		return err
	}
	tw := newTable(w, "HOST\tSTATE\tHEALTH\tWORST SENSOR\tHOTTEST SENSOR\tTEMP °C\tHEADROOM\tAGE\tLOAD1\tVNODES")
	for _, r := range rows {
		sensor, temp, headroom, age := "-", "-", "-", "-"
		if t := r.Hottest; t != nil {
			sensor, temp, headroom = t.Sensor, fmt.Sprintf("%.1f", t.Celsius), kpiNum(t.Headroom, "%.1f")
			age = kpiAge(time.Duration(t.AgeSeconds * float64(time.Second)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Host, r.State, r.Health, dash(r.WorstSensor),
			sensor, temp, headroom, age, kpiNum(r.Load1, "%.2f"), r.Vnodes)
	}
	return tw.Flush()
}

// ---- drover health

func (a *app) healthCommand() *cobra.Command {
	var (
		since, within time.Duration
		limit         int
		asJSON        bool
	)
	c := &cobra.Command{
		Use:   "health [HOST]",
		Short: "Show predicted critical breaches and recent health events",
		Long: `health first lists the standing predictions that a sensor reaches its critical bound within
--within (the newest prediction per sensor, unless the sensor has since gone back to ok, gone
critical, or lost its readings), soonest first. Then it lists the health events since --since,
newest first: state changes (ok, warning, critical, unknown) with the reading and the bound,
predictions, and sensor errors. HOST limits both to one hypervisor.`,
		Example: "  drover health\n  drover health hv1 --since 24h --limit 200\n  drover health --json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := positive("since", since); err != nil {
				return err
			}
			if err := positive("within", within); err != nil {
				return err
			}
			if limit <= 0 {
				return fmt.Errorf("--limit must be at least 1, got %d", limit)
			}
			host := ""
			if len(args) == 1 {
				host = args[0]
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st *store.Store) error {
				if host != "" {
					if err := st.CheckHost(ctx, host); err != nil {
						return err
					}
				}
				breaches, err := st.PredictedBreaches(ctx, within)
				if err != nil {
					return err
				}
				if host != "" {
					breaches = slices.DeleteFunc(breaches, func(b store.Breach) bool { return b.Host != host })
				}
				from := time.Now().Add(-since)
				events, err := st.HealthEvents(ctx, host, from, limit)
				if err != nil {
					return err
				}
				if asJSON {
					return writeKPIJSON(a.stdout, healthDoc(breaches, events))
				}
				if err := printBreaches(a.stdout, breaches, within); err != nil {
					return err
				}
				if err := printEvents(a.stdout, events, from); err != nil {
					return err
				}
				if len(events) == limit {
					fmt.Fprintf(a.stderr, "showing the newest %d events: use --limit for more\n", limit)
				}
				return nil
			})
		},
	}
	f := c.Flags()
	f.DurationVar(&since, "since", time.Hour, "show events of this long ago and newer")
	f.DurationVar(&within, "within", 15*time.Minute, "show predicted breaches up to this far ahead")
	f.IntVar(&limit, "limit", 50, "show at most this many events")
	f.BoolVar(&asJSON, "json", false, "print JSON instead of tables")
	return c
}

type breachJSON struct {
	Host        string     `json:"host"`
	Sensor      string     `json:"sensor"`
	BreachAt    time.Time  `json:"predicted_breach_at"`
	MinutesLeft float64    `json:"minutes_left"`
	Confidence  float64    `json:"confidence"`
	Critical    float64    `json:"critical"`
	Fitted      float64    `json:"fitted"`
	Current     *float64   `json:"current"`
	CurrentAt   *time.Time `json:"current_at"`
	State       string     `json:"state"`
	PredictedAt time.Time  `json:"predicted_at"`
	Message     string     `json:"message"`
}

type eventJSON struct {
	ID          int64      `json:"id"`
	At          time.Time  `json:"ts"`
	Host        string     `json:"host"`
	Sensor      string     `json:"sensor"`
	Kind        string     `json:"kind"`
	From        string     `json:"from_state,omitempty"`
	To          string     `json:"to_state,omitempty"`
	Value       *float64   `json:"value"`
	Threshold   *float64   `json:"threshold"`
	PredictedAt *time.Time `json:"predicted_breach_at"`
	Confidence  *float64   `json:"confidence"`
	Message     string     `json:"message"`
}

func healthDoc(bs []store.Breach, es []store.HealthEvent) map[string]any {
	breaches := make([]breachJSON, 0, len(bs))
	for _, b := range bs {
		breaches = append(breaches, breachJSON{Host: b.Host, Sensor: b.Sensor, BreachAt: b.At, MinutesLeft: b.Left.Minutes(),
			Confidence: b.Confidence, Critical: b.Critical, Fitted: b.Fitted, Current: b.Current, CurrentAt: b.CurrentAt,
			State: b.State, PredictedAt: b.PredictedAt, Message: b.Message})
	}
	events := make([]eventJSON, 0, len(es))
	for _, e := range es {
		events = append(events, eventJSON{ID: e.ID, At: e.At, Host: e.Host, Sensor: e.Sensor, Kind: e.Kind, From: e.From,
			To: e.To, Value: e.Value, Threshold: e.Threshold, PredictedAt: e.PredictedAt, Confidence: e.Confidence,
			Message: e.Message})
	}
	return map[string]any{"predicted_breaches": breaches, "events": events}
}

func printBreaches(w io.Writer, bs []store.Breach, within time.Duration) error {
	if len(bs) == 0 {
		_, err := fmt.Fprintf(w, "no critical breach predicted within %v\n\n", within)
		return err
	}
	fmt.Fprintf(w, "predicted critical breaches within %v:\n", within)
	tw := newTable(w, "HOST\tSENSOR\tIN\tAT\tNOW\tCRITICAL\tCONFIDENCE")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%g\t%.2f\n", b.Host, b.Sensor, kpiAge(b.Left), kpiTime(b.At),
			kpiNum(b.Current, "%g"), b.Critical, b.Confidence)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}

func printEvents(w io.Writer, es []store.HealthEvent, since time.Time) error {
	if len(es) == 0 {
		_, err := fmt.Fprintf(w, "no health events since %s\n", kpiTime(since))
		return err
	}
	tw := newTable(w, "TIME\tHOST\tSENSOR\tKIND\tCHANGE\tVALUE\tBOUND\tMESSAGE")
	for _, e := range es {
		change := "-"
		if e.From != "" || e.To != "" {
			change = dash(e.From) + " -> " + dash(e.To)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", kpiTime(e.At), e.Host, e.Sensor, e.Kind, change,
			kpiNum(e.Value, "%g"), kpiNum(e.Threshold, "%g"), e.Message)
	}
	return tw.Flush()
}

// ---- drover kpi

type pointJSON struct {
	Source  string    `json:"source"`
	VNode   string    `json:"vnode"`
	Sensor  string    `json:"sensor"`
	Unit    string    `json:"unit"`
	Bucket  time.Time `json:"bucket"`
	Avg     float64   `json:"avg"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples int64     `json:"samples"`
}

func (a *app) kpiCommand() *cobra.Command {
	var (
		sensor      string
		since, step time.Duration
		asJSON      bool
	)
	c := &cobra.Command{
		Use:   "kpi HOST METRIC",
		Short: "Show one hypervisor's KPI over time, in buckets",
		Long: `kpi prints the samples of METRIC on HOST over the last --since, grouped into buckets of --step
(starting at whole multiples of the step, the first one reaching back to --since or a little
more): per bucket the mean, minimum, maximum and number of samples. A bucket without samples is
not printed.
Every series of the metric is shown (each sensor and each vnode apart) unless --sensor picks one.
Metric names are the agents' (load1, cpu_busy_ratio, memory_available_bytes, temp_celsius,
power_watts, vm_cpu_busy_ratio…): an unknown one gets the list of those HOST has.`,
		Example: "  drover kpi hv1 load1\n  drover kpi hv1 temp_celsius --sensor 'CPU Temp' --since 6h --step 5m\n  drover kpi hv2 power_watts --json",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := positive("since", since); err != nil {
				return err
			}
			if err := positive("step", step); err != nil {
				return err
			}
			host, metric := args[0], args[1]
			ctx := cmd.Context()
			return a.withStore(ctx, func(st *store.Store) error {
				if err := checkSeries(ctx, st, host, metric, sensor); err != nil {
					return err
				}
				// buckets on whole multiples of the step (12:05, 12:10…), the first one reaching back to since
				to := time.Now()
				h := store.HistoryQuery{Host: host, Metric: metric, Sensor: sensor, From: to.Add(-since).Truncate(step), To: to, Step: step}
				pts, err := st.KpiHistory(ctx, h)
				if err != nil {
					return err
				}
				if asJSON {
					out := make([]pointJSON, 0, len(pts))
					for _, p := range pts {
						out = append(out, pointJSON{Source: p.Source, VNode: p.VNode, Sensor: p.Sensor, Unit: p.Unit,
							Bucket: p.Bucket, Avg: p.Avg, Min: p.Min, Max: p.Max, Samples: p.Count})
					}
					return writeKPIJSON(a.stdout, out)
				}
				return printHistory(a.stdout, h, pts)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&sensor, "sensor", "", "only this sensor's series (default: every series of the metric)")
	f.DurationVar(&since, "since", time.Hour, "show this long a time, up to now")
	f.DurationVar(&step, "step", time.Minute, "bucket width")
	f.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return c
}

// checkSeries says what is wrong when host, metric or sensor names nothing recorded.
func checkSeries(ctx context.Context, st *store.Store, host, metric, sensor string) error {
	if err := st.CheckHost(ctx, host); err != nil {
		return err
	}
	series, err := st.HostSeries(ctx, host)
	if err != nil {
		return err
	}
	var metrics, sensors []string
	for _, s := range series {
		if !slices.Contains(metrics, s.Metric) {
			metrics = append(metrics, s.Metric)
		}
		if s.Metric == metric && !slices.Contains(sensors, strconv.Quote(s.Sensor)) {
			sensors = append(sensors, strconv.Quote(s.Sensor))
		}
	}
	switch {
	case len(series) == 0:
		return fmt.Errorf("%s has no KPI series recorded: is its agent running?", host)
	case !slices.Contains(metrics, metric):
		return fmt.Errorf("%s has no metric %q (it has: %s)", host, metric, strings.Join(metrics, ", "))
	case sensor != "" && !slices.Contains(sensors, strconv.Quote(sensor)):
		return fmt.Errorf("%s %s has no sensor %q (it has: %s)", host, metric, sensor, strings.Join(sensors, ", "))
	}
	return nil
}

func printHistory(w io.Writer, h store.HistoryQuery, pts []store.HistoryPoint) error {
	if len(pts) == 0 {
		_, err := fmt.Fprintf(w, "no samples of %s %s between %s and %s\n", h.Host, h.Metric, kpiTime(h.From), kpiTime(h.To))
		return err
	}
	tw := newTable(w, "TIME\tSERIES\tUNIT\tAVG\tMIN\tMAX\tSAMPLES")
	for _, p := range pts {
		name := p.Source
		if p.VNode != "" {
			name += " vnode " + p.VNode
		}
		if p.Sensor != "" {
			name += " " + strconv.Quote(p.Sensor)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.4g\t%.4g\t%.4g\t%d\n", kpiTime(p.Bucket), name, dash(p.Unit), p.Avg, p.Min, p.Max, p.Count)
	}
	return tw.Flush()
}

// ---- drover energy

type energyJSON struct {
	JobID          int64      `json:"job_id"`
	Name           string     `json:"name"`
	User           string     `json:"user"`
	State          string     `json:"state"`
	StartedAt      time.Time  `json:"started_at"`
	EndedAt        *time.Time `json:"ended_at"`
	Hypervisors    []string   `json:"hypervisors"`
	Vnodes         int64      `json:"vnodes"`
	VnodeSeconds   float64    `json:"vnode_seconds"`
	PoweredSeconds float64    `json:"powered_seconds"`
	Joules         float64    `json:"joules"`
	KWh            float64    `json:"kwh"`
}

func (a *app) energyCommand() *cobra.Command {
	var (
		since  time.Duration
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "energy [JOB]",
		Short: "Show the energy each Slurm job used on the hypervisors its vnodes ran on",
		Long: `energy charges every job, for each of its vnodes, a share of the power of the hypervisor the
vnode ran on while the job ran: the host's power is split among the vnodes on it in proportion to
their vCPUs. Power is the BMC's (IPMI) reading, or RAPL's CPU package and DRAM power on hosts
without one. POWERED is the part of the job's vnode time that had power samples: below 100% the
figure is a lower bound. Without JOB it lists the jobs that ran in the last --since (default 24h);
with JOB it shows that job whenever it ran.`,
		Example: "  drover energy\n  drover energy 1234\n  drover energy --since 168h --json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := positive("since", since); err != nil {
				return err
			}
			var job int64
			from := time.Now().Add(-since)
			if len(args) == 1 {
				id, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil || id <= 0 {
					return fmt.Errorf("job id %q is not a positive number", args[0])
				}
				job = id
				if !cmd.Flags().Changed("since") {
					from = time.Time{}
				}
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st *store.Store) error {
				rows, err := st.EnergyPerJob(ctx, job, from)
				if err != nil {
					return err
				}
				if job != 0 && len(rows) == 0 {
					if from.IsZero() {
						return fmt.Errorf("no job %d recorded: drover records the jobs its Slurm hooks see", job)
					}
					return fmt.Errorf("no job %d recorded that ran since %s", job, kpiTime(from))
				}
				if asJSON {
					out := make([]energyJSON, 0, len(rows))
					for _, r := range rows {
						out = append(out, energyJSON(r))
					}
					return writeKPIJSON(a.stdout, out)
				}
				return printEnergy(a.stdout, rows, from)
			})
		},
	}
	c.Flags().DurationVar(&since, "since", 24*time.Hour, "list the jobs that ran this long ago and later")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return c
}

func printEnergy(w io.Writer, rows []store.JobEnergy, since time.Time) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintf(w, "no jobs ran since %s\n", kpiTime(since))
		return err
	}
	tw := newTable(w, "JOB\tNAME\tUSER\tSTATE\tSTARTED\tTOOK\tHYPERVISORS\tVNODES\tKWH\tKJ\tPOWERED")
	for _, r := range rows {
		end, took := time.Now(), ""
		if r.EndedAt != nil {
			end = *r.EndedAt
		} else {
			took = " so far"
		}
		powered := "-"
		if r.VnodeSeconds > 0 {
			powered = fmt.Sprintf("%.0f%%", 100*r.PoweredSeconds/r.VnodeSeconds)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.4f\t%.1f\t%s\n", r.JobID, dash(r.Name), dash(r.User), r.State,
			kpiTime(r.StartedAt), kpiAge(end.Sub(r.StartedAt))+took, dash(strings.Join(r.Hypervisors, ",")), r.Vnodes,
			r.KWh, r.Joules/1000, powered)
	}
	return tw.Flush()
}
