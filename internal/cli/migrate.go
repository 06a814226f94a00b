package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/drover-hpc/drover/internal/vnode"
	"github.com/drover-hpc/drover/migrate"
)

func (a *app) migrateCommand() *cobra.Command {
	var (
		to          string
		maxDowntime time.Duration
		bandwidth   int
		timeout     time.Duration
		verifyFor   time.Duration
		watch       bool
	)
	c := &cobra.Command{
		Use:   "migrate VNODE --to HYPERVISOR",
		Short: "Live-migrate a vnode's VM to another hypervisor while its job runs",
		Long: `migrate moves the running VM of VNODE to HYPERVISOR without stopping it: it finds where the
VM really runs (asking every hypervisor), journals the migration in the database, copies the
guest's memory while it runs, switches over within --max-downtime, and then watches the guest on
the destination (running, using CPU, writing to its console) before calling it done.

Progress goes to standard error (updated in place on a terminal, one line per update otherwise);
a summary goes to standard output. On failure it says where the guest is and what to do next, and
exits non-zero. Interrupting it (Ctrl-C) aborts the copy: the guest stays where it was.`,
		Example: "  drover migrate vn1 --to hv2\n  drover migrate vn1 --to hv1 --max-downtime 100ms --bandwidth 500",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			req := migrate.Request{VNode: args[0], To: to}
			if cmd.Flags().Changed("max-downtime") {
				req.MaxDowntime = &maxDowntime
			}
			if cmd.Flags().Changed("bandwidth") {
				req.BandwidthMiBs = &bandwidth
			}
			if cmd.Flags().Changed("timeout") {
				req.Timeout = &timeout
			}
			if cmd.Flags().Changed("verify-for") {
				req.VerifyFor = &verifyFor
			}
			if cat, err := vnode.NewCatalog(a.cfg.Vnodes, a.cfg.Libvirt.DomainType); err == nil && cat.Has(req.VNode) {
				req.SerialLog = cat.SerialLog(req.VNode)
			}

			st, closeDB, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer closeDB()
			conns := migrate.NewPool(a.cfg.Hypervisors, a.cfg.Libvirt.ConnectTimeout)
			defer conns.Close()

			// the progress display says what the executor's info lines would; keep its warnings
			log := a.log
			if log.GetLevel() == zerolog.InfoLevel {
				log = log.Level(zerolog.WarnLevel)
			}
			ex := migrate.New(a.cfg.Migration, st, conns, log)

			terminal := isTerminal(a.stderr)
			if !cmd.Flags().Changed("watch") {
				watch = terminal
			}
			d := &display{w: a.stderr, terminal: terminal, watch: watch}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				select {
				case <-ctx.Done():
					d.note("interrupted: aborting the migration (the guest stays where it was)")
				case <-stop:
				}
			}()
			res, err := ex.Migrate(ctx, req, d.event)
			d.close()
			for _, f := range res.Reconciled {
				fmt.Fprintln(a.stderr, reconciledLine(f))
			}
			if err != nil {
				return &exitError{code: 1, err: failure(err)}
			}
			return summary(a.stdout, res, req.SerialLog)
		},
	}
	f := c.Flags()
	f.StringVar(&to, "to", "", "hypervisor to move the vnode to (required)")
	f.DurationVar(&maxDowntime, "max-downtime", 0, "longest pause of the guest at switch-over (default migration.max_downtime)")
	f.IntVar(&bandwidth, "bandwidth", 0, "cap the copy at this many MiB/s, 0 for none (default migration.bandwidth_mibs)")
	f.DurationVar(&timeout, "timeout", 0, "abort if not switched over within this long (default migration.timeout)")
	f.DurationVar(&verifyFor, "verify-for", 0, "watch the guest on the destination this long before calling it done; 0 is the quick check: running, vCPUs advancing (default migration.verify_for)")
	f.BoolVar(&watch, "watch", false, "print transfer progress, not only phase changes (default: on when stderr is a terminal)")
	_ = c.MarkFlagRequired("to")
	return c
}

// isTerminal reports whether w is a character device, i.e. someone is watching.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// display shows a migration's progress: a line per phase change and, when watching, per transfer
// update, rewritten in place on a terminal.
type display struct {
	w               io.Writer
	terminal, watch bool

	mu      sync.Mutex
	pending bool // a progress line without its newline is on the terminal
}

func (d *display) event(ev migrate.Event) {
	if ev.Progress != nil {
		if d.watch {
			d.line(progressLine(ev), true)
		}
		return
	}
	d.line(phaseLine(ev), false)
}

func (d *display) note(s string) { d.line(s, false) }

// line writes s; inPlace lines overwrite each other on a terminal.
func (d *display) line(s string, inPlace bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case inPlace && d.terminal:
		fmt.Fprintf(d.w, "\r%s\x1b[K", s)
		d.pending = true
		return
	case d.pending:
		fmt.Fprint(d.w, "\n")
		d.pending = false
	}
	fmt.Fprintln(d.w, s)
}

// close ends an in-place line.
func (d *display) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending {
		fmt.Fprint(d.w, "\n")
		d.pending = false
	}
}

// phaseLine: "vn1: transferring hv1 → hv2 (migration 12, 1.02s)".
func phaseLine(ev migrate.Event) string {
	s := fmt.Sprintf("%s: %s %s → %s (migration %d, %s)", ev.VNode, strings.ReplaceAll(string(ev.Phase), "_", " "),
		ev.From, ev.To, ev.ID, seconds(ev.Since))
	if ev.Err != "" {
		s += ": " + ev.Err
	}
	return s
}

// progressLine: "vn1: 64.0 MiB of 128.5 MiB sent, 60.1 MiB left, 95.2 MiB/s, iteration 1, elapsed 0.75s",
// elapsed being QEMU's time since the copy began.
func progressLine(ev migrate.Event) string {
	p := ev.Progress
	if p.DataTotal == 0 {
		return fmt.Sprintf("%s: waiting for %s to receive, elapsed %s", ev.VNode, ev.To, seconds(p.Elapsed))
	}
	s := fmt.Sprintf("%s: %s of %s sent, %s left, %s/s, iteration %d, elapsed %s", ev.VNode, mib(p.DataProcessed),
		mib(p.DataTotal), mib(p.DataRemaining), mib(p.BytesPerSec), p.Iteration, seconds(p.Elapsed))
	if p.PostCopy {
		s += ", post-copy"
	}
	return s
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// summary prints what a completed migration did; serial is the console log that was asked for.
func summary(w io.Writer, r migrate.Result, serial string) error {
	lv, v := r.Libvirt, r.Verification
	check := "console not checked (no console log known for it: vnodes.serial_dir)"
	switch {
	case serial != "" && v.SerialLog == "":
		check = "console not checked (" + serial + " is not readable here)"
	case v.SerialLog != "":
		check = fmt.Sprintf("%d new console lines", v.NewLines)
	}
	rows := [][2]string{
		{"wall time", fmt.Sprintf("%s (first byte sent after %s)", seconds(r.Wall), seconds(r.FirstByte))},
		{"QEMU time", seconds(lv.Elapsed)},
		{"downtime", lv.Downtime.String()},
		{"data sent", fmt.Sprintf("%s of %s", mib(lv.DataProcessed), mib(lv.DataTotal))},
		{"iterations", fmt.Sprint(lv.Iterations)},
		{"verification", fmt.Sprintf("passed: running %s on %s, %s CPU, %s", seconds(v.Watched), r.To, v.CPUTime.Round(time.Millisecond), check)},
		{"journal id", fmt.Sprint(r.ID)},
	}
	if lv.PostCopy {
		rows = append(rows, [2]string{"post-copy", "yes"})
	}
	if r.Corrected != "" {
		rows = append(rows, [2]string{"corrected", "the database said " + r.Corrected + "; it ran on " + r.From})
	}
	if len(r.Unasked) > 0 {
		rows = append(rows, [2]string{"warning", "could not ask " + strings.Join(r.Unasked, ", ") + " whether it runs a copy too"})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "migrated %s from %s to %s\n", r.VNode, r.From, r.To)
	for _, row := range rows {
		fmt.Fprintf(&b, "  %-13s %s\n", row[0], row[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// failure is err with where the journal stands and what to do next, for the exit message.
func failure(err error) error {
	var me *migrate.Error
	if !errors.As(err, &me) {
		return err
	}
	msg := err.Error()
	if me.ID != 0 {
		msg += fmt.Sprintf("\n  journal: migration %d, phase %s", me.ID, me.Phase)
	} else {
		msg += "\n  nothing was changed"
	}
	if me.Hint != "" {
		msg += "\n  next: " + me.Hint
	}
	return errors.New(msg)
}

// reconciledLine reports a stale migration settled before this one started:
// "reconciled migration 11 of vn1 (hv1 → hv2, owner n1:4242 died in transferring): rolled_back, runs on hv1".
func reconciledLine(f migrate.Finding) string {
	s := fmt.Sprintf("reconciled migration %d of %s (%s → %s, owner %s died in %s): ", f.ID, f.VNode, f.From, f.To,
		dash(f.Owner), strings.ReplaceAll(string(f.Phase), "_", " "))
	switch {
	case f.Outcome == "":
		s += "left unfinished: " + f.Note + "; next: " + f.Hint
	case f.RunsOn == "":
		s += string(f.Outcome) + ", runs nowhere: " + f.Note
	default:
		s += string(f.Outcome) + ", runs on " + f.RunsOn
	}
	if len(f.Did) > 0 {
		s += " (" + strings.Join(f.Did, ", ") + ")"
	}
	return s
}
