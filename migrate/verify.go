package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/virt"
)

// Verification is what the executor saw of the guest on the destination after switch-over.
type Verification struct {
	Passed  bool
	Watched time.Duration // how long the guest was watched
	Samples int           // state and CPU-time readings taken
	CPUTime time.Duration // CPU time the guest used while watched
	// SerialLog is the console log that was read; "" when none was given or it was not readable
	// here (then console output was not checked).
	SerialLog string
	NewLines  int    // console lines the guest wrote while watched
	Problem   string // why verification failed; "" when it passed
}

// Verification's timing.
const (
	probeInterval  = 250 * time.Millisecond
	probeTimeout   = 5 * time.Second
	maxProbeErrors = 3 // consecutive failed readings before verification gives up
	// serialGrace is how long past VerifyFor verification waits for a first console line; the
	// guest must keep running meanwhile, and a line ends the wait at once. A guest under
	// emulation on a loaded hypervisor was seen quiet for 7.6 s after a switch-over while its
	// vCPUs advanced and it went on writing afterwards (5 s was too short); a guest that panics
	// says so on its console and fails at once.
	serialGrace = 15 * time.Second
)

// probeEvery is the probe interval for a watch of verifyFor: a tenth of it, between 10 ms and
// probeInterval, so a short watch (migration.verify_for: 0, the quick check: running, and its
// vCPUs advanced between two readings) costs tens of milliseconds, not two full intervals.
func probeEvery(verifyFor time.Duration) time.Duration {
	return min(max(verifyFor/10, 10*time.Millisecond), probeInterval)
}

// consoleWatch is the shortest watch that waits for the guest to write to its console: a
// heartbeat once a second cannot be expected sooner. Shorter watches still fail on a panic line.
const consoleWatch = time.Second

// quietBelow is the watcher's quiet: watches shorter than it do not wait for console lines.
// With migration.quiet_console no watch does.
func quietBelow(s config.Migration) time.Duration {
	if s.QuietConsole {
		return time.Duration(math.MaxInt64)
	}
	return consoleWatch
}

// sample is one reading of the domain on the destination.
type sample struct {
	gone  bool // the destination has no such domain any more
	state virt.State
	cpu   time.Duration
}

// probeFunc reads the domain once.
type probeFunc func(ctx context.Context) (sample, error)

// domainProbe reads name's state and CPU time on c with one bulk statistics call.
func domainProbe(c *virt.Conn, name string) probeFunc {
	return func(ctx context.Context) (sample, error) {
		ctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		st, err := c.DomainStats(ctx, name)
		if errors.Is(err, virt.ErrNoDomain) || err == nil && len(st) == 0 {
			return sample{gone: true}, nil
		}
		if err != nil {
			return sample{}, err
		}
		return sample{state: st[0].State, cpu: st[0].CPUTime}, nil
	}
}

// watcher checks that a migrated guest lives: it runs for verifyFor, its CPU time advances, and
// its console (when readable) gets new lines without a kernel panic.
type watcher struct {
	dst       string // hypervisor name, for messages
	probe     probeFunc
	console   *console // nil: not checked
	verifyFor time.Duration
	interval  time.Duration
	// quiet: watches shorter than this do not wait for console output (consoleWatch in the
	// executor; 0 = always wait)
	quiet time.Duration
	grace time.Duration
}

// run watches until the guest has shown it lives, or fails. It returns within about
// verifyFor+grace (plus one probe timeout) whatever happens, and stops early if ctx ends.
func (w watcher) run(ctx context.Context) Verification {
	start := time.Now()
	var v Verification
	if w.console != nil {
		v.SerialLog = w.console.path
	}
	fail := func(format string, args ...any) Verification {
		v.Watched = time.Since(start)
		v.Problem = fmt.Sprintf(format, args...)
		return v
	}
	deadline, giveUp := start.Add(w.verifyFor), start.Add(w.verifyFor+w.grace)
	var first, last sample
	errs := 0
	for {
		s, err := w.probe(ctx)
		switch {
		case ctx.Err() != nil:
			return fail("verification interrupted after %v: %v", since(start), ctx.Err())
		case err != nil:
			if errs++; errs >= maxProbeErrors {
				return fail("could not watch the guest on %s: %v", w.dst, err)
			}
		case s.gone:
			return fail("the domain disappeared from %s %v after switch-over (a guest that panics or reboots is destroyed)", w.dst, since(start))
		case s.state != virt.StateRunning && s.state != virt.StateBlocked:
			return fail("the guest is %s on %s %v after switch-over", s.state, w.dst, since(start))
		default:
			errs = 0
			if v.Samples == 0 {
				first = s
			}
			last = s
			v.Samples++
			v.CPUTime = last.cpu - first.cpu
		}
		if w.console != nil {
			if err := w.console.poll(); err != nil {
				return fail("read the console log: %v", err)
			}
			v.NewLines = w.console.lines
			if w.console.panicked {
				return fail("the guest's console on %s shows a kernel panic", w.dst)
			}
		}
		now := time.Now()
		if !now.Before(deadline) && v.Samples >= 2 {
			cpuOK := last.cpu > first.cpu
			consoleOK := w.console == nil || w.console.lines > 0 || w.verifyFor < w.quiet
			if cpuOK && consoleOK {
				v.Passed, v.Watched = true, time.Since(start)
				return v
			}
			if !now.Before(giveUp) {
				if !cpuOK {
					return fail("the guest used no CPU time on %s in %v: it is hung", w.dst, since(start))
				}
				return fail("the guest wrote nothing to its console (%s) in %v on %s, though its vCPUs ran (its last line "+
					"before: %q; guests that print nothing for long need migration.quiet_console: true)",
					w.console.path, since(start), w.dst, w.console.lastLine())
			}
		}
		t := time.NewTimer(w.interval)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }

// console follows a serial log file from where it ended when watching began.
type console struct {
	path     string
	offset   int64
	lines    int  // complete lines written since
	panicked bool // a kernel panic was among them
	tail     []byte
}

// panicText is what a Linux guest prints on its console when it panics.
var panicText = []byte("Kernel panic - not syncing")

// openConsole starts following path; it returns nil when the file cannot be read here (a log on
// another machine), so the console is simply not checked.
func openConsole(path string) *console {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	return &console{path: path, offset: fi.Size()}
}

// poll reads what was appended since the last poll. A file that shrank was rotated or truncated:
// it is read from its start.
func (c *console) poll() error {
	f, err := os.Open(c.path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < c.offset {
		c.offset, c.tail = 0, nil
	}
	if fi.Size() == c.offset {
		return nil
	}
	b := make([]byte, fi.Size()-c.offset)
	n, err := f.ReadAt(b, c.offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	b = b[:n]
	c.offset += int64(n)
	c.lines += bytes.Count(b, []byte{'\n'})
	// keep the unfinished last line so a panic message split across polls is still seen
	text := append(c.tail, b...)
	if bytes.Contains(text, panicText) {
		c.panicked = true
	}
	if i := bytes.LastIndexByte(text, '\n'); i >= 0 {
		text = text[i+1:]
	}
	if len(text) > 4096 {
		text = text[len(text)-4096:]
	}
	c.tail = append([]byte(nil), text...)
	return nil
}

// lastLine is the last complete line the console log held when watching began ("" if none), for
// a report of a silent guest: what it said last tells a hung workload from a quiet one.
func (c *console) lastLine() string {
	f, err := os.Open(c.path)
	if err != nil {
		return ""
	}
	defer f.Close()
	from := max(0, c.offset-512)
	b := make([]byte, c.offset-from)
	n, _ := f.ReadAt(b, from)
	b = bytes.TrimRight(b[:n], "\r\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	} else if from > 0 {
		return "" // a line longer than what was read
	}
	return strings.TrimSpace(string(b))
}
