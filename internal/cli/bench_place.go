package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-hpc/drover/scheduler"
)

func init() { benchVerbs = append(benchVerbs, (*app).benchPlaceCommand) }

// placeGoal is the target: decisions per second on one core at placeGoalHosts hypervisors.
const (
	placeGoal      = 5000
	placeGoalHosts = 10000
)

// placeResult is one row of `drover bench place`.
type placeResult struct {
	Hosts           int     `json:"hosts"`
	Explain         bool    `json:"explain"`
	Decisions       int     `json:"decisions"`
	Placed          int     `json:"placed"`
	DecisionsPerSec float64 `json:"decisions_per_sec"` // wall clock
	// DecisionsPerCPUSec counts process CPU time instead of wall time: on a shared machine it is
	// what one core delivers when the scheduler gives it to us.
	DecisionsPerCPUSec float64 `json:"decisions_per_cpu_sec"`
	P50Micros          float64 `json:"p50_us"`
	P99Micros          float64 `json:"p99_us"`
	NsPerHost          float64 `json:"ns_per_host"`
	SnapshotMillis     float64 `json:"snapshot_ms"`
}

func (a *app) benchPlaceCommand() *cobra.Command {
	var (
		sizes    []int
		seed     int64
		duration time.Duration
		policy   string
	)
	cmd := &cobra.Command{
		Use:   "place",
		Short: "Placement decisions per second on synthetic clusters, on one core",
		Long: `Generates synthetic clusters of each size (deterministic from --seed), prepares a snapshot
of each, and runs placement decisions on one goroutine with GOMAXPROCS=1 for --duration, with and
without explain traces. Prints decisions/s, p50/p99 latency and the cost per host for each size,
then, as the last line, one JSON object with every figure.`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{"config": "none"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(sizes) == 0 || duration <= 0 {
				return fmt.Errorf("bench place: want at least one size and a positive duration (got %v, %v)", sizes, duration)
			}
			for _, n := range sizes {
				if n <= 0 {
					return fmt.Errorf("bench place: size %d: want a positive number of hypervisors", n)
				}
			}
			prev := runtime.GOMAXPROCS(1)
			defer runtime.GOMAXPROCS(prev)
			now := time.Now()
			const row = "%8s %8s %10s %8s %12s %14s %10s %10s %9s %12s\n"
			fmt.Fprintf(a.stdout, row, "hosts", "explain", "decisions", "placed", "decisions/s", "decisions/cpu-s", "p50 µs", "p99 µs", "ns/host", "snapshot ms")
			var results []placeResult
			for _, n := range sizes {
				fmt.Fprintf(a.stderr, "bench place: generating %d hypervisors (seed %d)…\n", n, seed)
				rows, err := benchPlaceSize(n, seed, policy, now, duration)
				if err != nil {
					return err
				}
				for _, r := range rows { // one size at a time: the rows are the progress
					fmt.Fprintf(a.stdout, row, fmt.Sprint(r.Hosts), fmt.Sprint(r.Explain), fmt.Sprint(r.Decisions), fmt.Sprint(r.Placed),
						fmt.Sprintf("%.0f", r.DecisionsPerSec), fmt.Sprintf("%.0f", r.DecisionsPerCPUSec), fmt.Sprintf("%.1f", r.P50Micros),
						fmt.Sprintf("%.1f", r.P99Micros), fmt.Sprintf("%.1f", r.NsPerHost), fmt.Sprintf("%.1f", r.SnapshotMillis))
				}
				results = append(results, rows...)
			}
			goal := map[string]any{"hosts": placeGoalHosts, "decisions_per_sec": placeGoal}
			for _, r := range results {
				if r.Hosts == placeGoalHosts && !r.Explain {
					goal["measured"], goal["measured_cpu"] = r.DecisionsPerSec, r.DecisionsPerCPUSec
					goal["met"] = r.DecisionsPerSec >= placeGoal
					goal["met_cpu"] = r.DecisionsPerCPUSec >= placeGoal
				}
			}
			b, err := json.Marshal(map[string]any{"bench": "place", "policy": policy, "seed": seed, "gomaxprocs": 1,
				"duration_s": duration.Seconds(), "goal": goal, "results": results})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(a.stdout, string(b))
			return err
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&sizes, "sizes", []int{100, 1000, 10000, 100000}, "cluster sizes (hypervisors)")
	f.Int64Var(&seed, "seed", 1, "seed of the synthetic clusters and requests (also the tie-break seed)")
	f.DurationVar(&duration, "duration", time.Second, "how long to run decisions per size and mode")
	f.StringVar(&policy, "policy", scheduler.DefaultPolicy, "placement policy")
	return cmd
}

// benchPlaceSize measures one cluster size without and with explain traces.
func benchPlaceSize(n int, seed int64, policy string, now time.Time, duration time.Duration) ([]placeResult, error) {
	syn := scheduler.NewSynthetic(n, seed, now)
	p, err := scheduler.NewPipeline(scheduler.Config{Policy: policy, Racks: syn.Racks, Seed: seed})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	snap, err := p.Snapshot(syn.Hosts, now)
	if err != nil {
		return nil, err
	}
	snapMs := float64(time.Since(start).Microseconds()) / 1000
	reqs := make([]scheduler.Request, 1024)
	for i := range reqs {
		reqs[i] = syn.Request(i)
	}
	var out []placeResult
	for _, explain := range []bool{false, true} {
		r := placeResult{Hosts: n, Explain: explain, SnapshotMillis: snapMs}
		var lat []time.Duration
		runtime.GC() // the previous mode's garbage is not this one's cost
		cpu0 := cpuTime()
		begin := time.Now()
		// at least 3 decisions, so the slowest sizes still give a figure
		for time.Since(begin) < duration || len(lat) < 3 {
			t := time.Now()
			d := p.Decide(reqs[len(lat)%len(reqs)], snap, explain)
			lat = append(lat, time.Since(t))
			if d.Host != "" {
				r.Placed++
			}
		}
		elapsed, cpu := time.Since(begin), cpuTime()-cpu0
		r.Decisions = len(lat)
		r.DecisionsPerSec = float64(len(lat)) / elapsed.Seconds()
		if cpu > 0 {
			r.DecisionsPerCPUSec = float64(len(lat)) / cpu.Seconds()
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		r.P50Micros = float64(lat[len(lat)/2].Nanoseconds()) / 1e3
		r.P99Micros = float64(lat[(len(lat)*99)/100].Nanoseconds()) / 1e3
		r.NsPerHost = float64(cpu.Nanoseconds()) / float64(len(lat)) / float64(n) // CPU time, like decisions/cpu-s
		out = append(out, r)
	}
	return out, nil
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
