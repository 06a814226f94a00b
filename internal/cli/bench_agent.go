package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/drover-hpc/drover/kpi"
)

func init() { benchVerbs = append(benchVerbs, (*app).benchAgentCommand) }

// benchAgentResult is the JSON line `drover bench agent` ends with. CPU times are per cycle
// after the first (start-up excluded); peak RSS is VmHWM over the whole run.
type benchAgentResult struct {
	Bench                 string  `json:"bench"`
	Cycles                int     `json:"cycles"`
	Collectors            string  `json:"drover_collectors"`
	DroverSamples         int     `json:"drover_samples_per_cycle"`
	DroverCPUMsPerCycle   float64 `json:"drover_cpu_ms_per_cycle"`
	DroverPeakRSSKiB      int64   `json:"drover_peak_rss_kib"`
	ExporterCPUMsPerCycle float64 `json:"node_exporter_cpu_ms_per_cycle"`
	ExporterPeakRSSKiB    int64   `json:"node_exporter_peak_rss_kib"`
	ExporterBytes         int     `json:"node_exporter_bytes_per_scrape"`
	// RssAnon at the end: the heap and stacks, without the pages of the binary and its shared
	// libraries (drover's binary links libvirt, PostgreSQL and IPMI clients the cycle never uses)
	DroverAnonKiB   int64 `json:"drover_rss_anon_kib"`
	ExporterAnonKiB int64 `json:"node_exporter_rss_anon_kib"`
	// RSS at the end by what the pages belong to (rssParts): the executable's file, the shared
	// libraries' files (drover: libc and the tree libvirt.so.0 pulls in, which the libvirt
	// binding loads in every process at start; node_exporter: libc) and the rest (heap, stacks,
	// copied-on-write pages of either)
	DroverParts   rssParts `json:"drover_rss_parts_kib"`
	ExporterParts rssParts `json:"node_exporter_rss_parts_kib"`
	CPURatio      float64  `json:"cpu_ratio"` // drover / node_exporter
	RSSRatio      float64  `json:"rss_ratio"`
	// each peak less the process's shared-library pages at the end: drover's over node_exporter's
	RSSRatioWithoutLibs float64 `json:"rss_ratio_without_libs"`
	GoalMet             bool    `json:"goal_met"` // drover ≤ node_exporter in both
}

// rssParts splits a process's resident pages (KiB) by what they map.
type rssParts struct {
	Binary    int64 `json:"binary"`    // pages of the executable's file (not copied-on-write)
	Libraries int64 `json:"libraries"` // pages of shared-library files (*.so*), likewise
	Libs      int   `json:"library_count"`
	Other     int64 `json:"other"` // anonymous memory and dirty private copies
}

// readRSSParts sums /proc/PID/smaps: each mapping's file pages go to the executable or the
// shared libraries by its path, everything else (and a file's Anonymous copies) to Other.
func readRSSParts(pid int) (rssParts, error) {
	var p rssParts
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return p, err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return p, err
	}
	defer f.Close()
	if p, err = parseRSSParts(f, exe); err != nil {
		return p, fmt.Errorf("/proc/%d/smaps: %w", pid, err)
	}
	return p, nil
}

// parseRSSParts reads smaps text; exe is the executable's path. A file mapping's Rss goes to
// the executable or the libraries, less its Anonymous (copied-on-write) pages, which go to Other
// with every other mapping's Rss.
func parseRSSParts(r io.Reader, exe string) (rssParts, error) {
	var p rssParts
	libs := map[string]bool{}
	var file *int64 // the current mapping's bucket when it maps the executable or a library
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if !strings.HasSuffix(fs[0], ":") { // a mapping's header: range perms offset dev inode [path]
			file = nil
			if len(fs) >= 6 && fs[5] == exe {
				file = &p.Binary
			} else if len(fs) >= 6 && strings.Contains(fs[5], ".so") {
				file = &p.Libraries
				libs[fs[5]] = true
			}
			continue
		}
		if (fs[0] != "Rss:" && fs[0] != "Anonymous:") || len(fs) < 2 {
			continue
		}
		n, err := strconv.ParseInt(fs[1], 10, 64)
		if err != nil {
			return p, fmt.Errorf("%s %q: %w", fs[0], fs[1], err)
		}
		switch {
		case file == nil && fs[0] == "Rss:":
			p.Other += n
		case file != nil && fs[0] == "Rss:":
			*file += n
		case file != nil: // Anonymous: inside the Rss above
			*file -= n
			p.Other += n
		}
	}
	p.Libs = len(libs)
	return p, sc.Err()
}

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on Linux).
const userHZ = 100

func (a *app) benchAgentCommand() *cobra.Command {
	var (
		cycles int
		child  bool
		bin    string
	)
	c := &cobra.Command{
		Use:   "agent",
		Short: "CPU time and peak RSS of the agent's collection cycles vs Debian's prometheus-node-exporter",
		Long: `agent runs, side by side for --cycles seconds at 1 Hz:

  - drover's collection cycle (the procfs and sysfs collectors the agent reads: loadavg, cpu,
    meminfo, pressure, hwmon, thermal, rapl; no BMC, no libvirt, no database) in a child process;
  - Debian's prometheus-node-exporter, started on a loopback port and scraped once a second.

It reports each process's CPU time per cycle (utime+stime from /proc/PID/stat, from the end of
the first cycle to the end of the last, so start-up is left out) and its peak RSS (VmHWM), and
ends with one JSON line. The goal: drover's agent costs no more than node_exporter.`,
		Example:     "  drover bench agent --cycles 30",
		Args:        cobra.NoArgs,
		Annotations: map[string]string{"config": "none"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cycles < 2 {
				return errors.New("bench agent: --cycles must be at least 2")
			}
			if child {
				return benchAgentChild(cmd.Context(), cycles, os.Stdin, a.stdout)
			}
			res, err := a.benchAgent(cmd.Context(), cycles, bin)
			if err != nil {
				return err
			}
			line, err := json.Marshal(res)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(a.stdout, string(line))
			return err
		},
	}
	f := c.Flags()
	f.IntVar(&cycles, "cycles", 30, "collection cycles (seconds) to run")
	f.StringVar(&bin, "node-exporter", "prometheus-node-exporter", "the node_exporter binary")
	f.BoolVar(&child, "child", false, "run the collection cycles (the measured child process)")
	_ = f.MarkHidden("child")
	return c
}

// benchAgentChild runs the collection cycles at 1 Hz, printing "cycle N samples S" after each,
// then waits for its input to close so that the parent can read its figures while it lives.
func benchAgentChild(ctx context.Context, cycles int, in io.Reader, out io.Writer) error {
	reg, err := kpi.NewHostRegistry(kpi.Options{}, zerolog.Nop())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "collectors %s\n", strings.Join(reg.Names(), ","))
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 1; i <= cycles; i++ {
		cy := reg.Collect(ctx)
		fmt.Fprintf(out, "cycle %d samples %d\n", i, len(cy.Samples))
		if i < cycles {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
	}
	_, _ = io.Copy(io.Discard, in) // until the parent closes it
	return nil
}

// procFigures reads a process's CPU time (utime+stime), peak RSS and current anonymous RSS.
func procFigures(pid int) (cpu time.Duration, hwmKiB, anonKiB int64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	// the command name is in parentheses and may hold spaces: fields count from after ")"
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fs := strings.Fields(s[i+1:])
	if len(fs) < 13 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fs))
	}
	// fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the name
	ut, err1 := strconv.ParseInt(fs[11], 10, 64)
	st, err2 := strconv.ParseInt(fs[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	cpu = time.Duration(ut+st) * time.Second / userHZ
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	kib := map[string]int64{}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmHWM" && k != "RssAnon") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		kib[k] = n
	}
	if _, ok := kib["VmHWM"]; !ok {
		return 0, 0, 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
	}
	return cpu, kib["VmHWM"], kib["RssAnon"], nil
}

func (a *app) benchAgent(ctx context.Context, cycles int, exporterBin string) (benchAgentResult, error) {
	res := benchAgentResult{Bench: "agent", Cycles: cycles}
	exporter, err := exec.LookPath(exporterBin)
	if err != nil {
		return res, fmt.Errorf("bench agent: %w (apt-get install prometheus-node-exporter, or scripts/testbed install)", err)
	}
	self, err := os.Executable()
	if err != nil {
		return res, err
	}

	// node_exporter on a free loopback port
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	ne := exec.CommandContext(ctx, exporter, "--web.listen-address="+addr)
	if err := ne.Start(); err != nil {
		return res, fmt.Errorf("start %s: %w", exporter, err)
	}
	defer func() { _ = ne.Process.Kill(); _ = ne.Wait() }()
	url := "http://" + addr + "/metrics"
	scrape := func() (int, error) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("node_exporter: HTTP %s", resp.Status)
		}
		return len(b), err
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := scrape(); err == nil {
			break
		} else if time.Now().After(deadline) {
			return res, fmt.Errorf("node_exporter on %s did not answer within 10 s: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// drover's cycles in a child process
	child := exec.CommandContext(ctx, self, "bench", "agent", "--child", "--cycles", strconv.Itoa(cycles))
	stdin, err := child.StdinPipe()
	if err != nil {
		return res, err
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		return res, err
	}
	child.Stderr = a.stderr
	if err := child.Start(); err != nil {
		return res, fmt.Errorf("start the agent child: %w", err)
	}
	defer func() { _ = stdin.Close(); _ = child.Wait() }()

	fmt.Fprintf(a.stdout, "drover child pid %d, node_exporter pid %d on %s; %d cycles at 1 Hz\n", child.Process.Pid, ne.Process.Pid, addr, cycles)
	lines := bufio.NewScanner(stdout)
	var d0, n0 struct{ cpu time.Duration }
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 1; i <= cycles; i++ {
		// one scrape of node_exporter and one cycle of drover per second
		n, err := scrape()
		if err != nil {
			return res, err
		}
		res.ExporterBytes = n
		for lines.Scan() {
			line := lines.Text()
			if v, ok := strings.CutPrefix(line, "collectors "); ok {
				res.Collectors = v
				continue
			}
			var c, s int
			if _, err := fmt.Sscanf(line, "cycle %d samples %d", &c, &s); err == nil {
				res.DroverSamples = s
				break
			}
		}
		if err := lines.Err(); err != nil {
			return res, err
		}
		if i == 1 {
			if d0.cpu, _, _, err = procFigures(child.Process.Pid); err != nil {
				return res, err
			}
			if n0.cpu, _, _, err = procFigures(ne.Process.Pid); err != nil {
				return res, err
			}
		}
		if i%10 == 0 || i == cycles {
			fmt.Fprintf(a.stdout, "  %d/%d cycles\n", i, cycles)
		}
		if i < cycles {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-tick.C:
			}
		}
	}
	dc, dh, da, err := procFigures(child.Process.Pid)
	if err != nil {
		return res, err
	}
	nc, nh, na, err := procFigures(ne.Process.Pid)
	if err != nil {
		return res, err
	}
	per := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(cycles-1) }
	res.DroverCPUMsPerCycle, res.DroverPeakRSSKiB = per(dc-d0.cpu), dh
	res.ExporterCPUMsPerCycle, res.ExporterPeakRSSKiB = per(nc-n0.cpu), nh
	res.DroverAnonKiB, res.ExporterAnonKiB = da, na
	if res.DroverParts, err = readRSSParts(child.Process.Pid); err != nil {
		return res, err
	}
	if res.ExporterParts, err = readRSSParts(ne.Process.Pid); err != nil {
		return res, err
	}
	if res.ExporterCPUMsPerCycle > 0 {
		res.CPURatio = res.DroverCPUMsPerCycle / res.ExporterCPUMsPerCycle
	}
	if nh > 0 {
		res.RSSRatio = float64(dh) / float64(nh)
		if own := nh - res.ExporterParts.Libraries; own > 0 {
			res.RSSRatioWithoutLibs = float64(dh-res.DroverParts.Libraries) / float64(own)
		}
	}
	res.GoalMet = res.DroverCPUMsPerCycle <= res.ExporterCPUMsPerCycle && dh <= nh
	fmt.Fprintf(a.stdout, "drover agent cycle (%s, %d samples): %.2f ms CPU per cycle, peak RSS %d KiB (anonymous %d KiB)\n",
		res.Collectors, res.DroverSamples, res.DroverCPUMsPerCycle, dh, da)
	fmt.Fprintf(a.stdout, "node_exporter scrape (%d bytes): %.2f ms CPU per cycle, peak RSS %d KiB (anonymous %d KiB)\n",
		res.ExporterBytes, res.ExporterCPUMsPerCycle, nh, na)
	for _, p := range []struct {
		who string
		rssParts
	}{{"drover", res.DroverParts}, {"node_exporter", res.ExporterParts}} {
		fmt.Fprintf(a.stdout, "%s RSS at the end: executable %d KiB, %d shared libraries %d KiB, anonymous %d KiB\n",
			p.who, p.Binary, p.Libs, p.Libraries, p.Other)
	}
	fmt.Fprintf(a.stdout, "(CPU time counts in 10 ms ticks: over %d cycles the resolution is %.2f ms per cycle)\n",
		cycles-1, 10.0/float64(cycles-1))
	return res, nil
}
