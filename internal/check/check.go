// Package check runs `drover check`: one probe per configured component (PostgreSQL, slurmrestd,
// slurmctld, each hypervisor, each BMC), run concurrently, each bounded by a timeout, reported as one
// row per component with its version, round-trip latency and, on failure, what to fix.
//
// It knows nothing about the components themselves: the command line builds the probes from the
// clients of each package.
package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Probe checks one component.
type Probe struct {
	Component string // e.g. "libvirt hv1"
	Target    string // where it was looked for, e.g. qemu+tcp://198.18.0.2/system
	// Check connects and asks the component for its version. It returns the round-trip time of one
	// request on the established connection (zero: the whole check's duration is reported).
	Check func(ctx context.Context) (Report, error)
	// Fix says what to do when Check fails; it may inspect the error. Nil: the error says it all.
	Fix func(error) string
}

// Report is what a successful check learned.
type Report struct {
	Version string
	RTT     time.Duration
}

// Result is one probe's outcome.
type Result struct {
	Component, Target string
	OK                bool
	Version           string
	Latency           time.Duration
	Err               error
	Fix               string
}

// Run runs every probe concurrently, each under its own timeout, and returns results in probe order.
func Run(ctx context.Context, probes []Probe, timeout time.Duration) []Result {
	out := make([]Result, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = run(ctx, p, timeout)
		}()
	}
	wg.Wait()
	return out
}

func run(ctx context.Context, p Probe, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := Result{Component: p.Component, Target: p.Target}
	start := time.Now()
	type answer struct {
		rep Report
		err error
	}
	done := make(chan answer, 1)
	go func() { // a client that ignores ctx must not hold up the whole check
		rep, err := p.Check(ctx)
		done <- answer{rep, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		a.err = fmt.Errorf("no answer within %s", timeout)
	}
	res.Latency = time.Since(start)
	if a.err == nil && a.rep.RTT > 0 {
		res.Latency = a.rep.RTT
	}
	res.Version, res.Err, res.OK = a.rep.Version, a.err, a.err == nil
	if a.err != nil && p.Fix != nil {
		res.Fix = p.Fix(a.err)
	}
	return res
}

// Failed counts the results that are not OK.
func Failed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if !r.OK {
			n++
		}
	}
	return n
}

// Print writes the results as a table, then one paragraph per failure with the error and the fix.
func Print(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tTARGET\tSTATUS\tVERSION\tLATENCY")
	for _, r := range rs {
		status, lat := "ok", formatLatency(r.Latency)
		if !r.OK {
			status, lat = "UNREACHABLE", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Component, r.Target, status, orDash(r.Version), lat)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rs {
		if r.OK {
			continue
		}
		fmt.Fprintf(w, "\n%s: %s\n", r.Component, oneLine(r.Err))
		if r.Fix != "" {
			fmt.Fprintf(w, "  fix: %s\n", r.Fix)
		}
	}
	return nil
}

func formatLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	default:
		return d.Round(10 * time.Millisecond).String()
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// ErrDown is returned by callers when at least one component failed.
var ErrDown = errors.New("some components are unreachable")
