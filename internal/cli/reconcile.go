package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-hpc/drover/migrate"
)

func init() { verbs = append(verbs, (*app).reconcileCommand) }

func (a *app) reconcileCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "reconcile",
		Short: "Settle live migrations left unfinished by a drover process that died",
		Long: `reconcile looks at every migration the journal says is unfinished. One whose drover process
still runs is left alone. For the others it asks both hypervisors what they hold of the vnode's VM
(running, paused, shut off, absent; a libvirt job still under way is waited for, then aborted) and
brings the VM to exactly one running copy: it finishes a migration libvirt completed, rolls back
one it did not, resumes a copy paused at switch-over, destroys leftovers. The journal row gets its
final phase and what was found, the vnodes row says where the VM runs.

It prints one line per migration and exits 0 when everything is consistent afterwards, 1 when
something needs an operator (each such line is followed by what to do). drover migrate does the
same for stale migrations before it starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, closeDB, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer closeDB()
			conns := migrate.NewPool(a.cfg.Hypervisors, a.cfg.Libvirt.ConnectTimeout)
			defer conns.Close()
			fs, err := migrate.New(a.cfg.Migration, st, conns, a.log).Reconcile(ctx)
			if perr := printFindings(a.stdout, fs); perr != nil {
				return perr
			}
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("reconcile: %w", err)}
			}
			if n := needOperator(fs); n > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d migration(s) need an operator: see \"next:\" above", n)}
			}
			return nil
		},
	}
}

func needOperator(fs []migrate.Finding) int {
	n := 0
	for _, f := range fs {
		if !f.Consistent() {
			n++
		}
	}
	return n
}

// printFindings writes a table of findings, then for each one that needs an operator what was
// found and what to do.
func printFindings(w io.Writer, fs []migrate.Finding) error {
	if len(fs) == 0 {
		_, err := fmt.Fprintln(w, "no unfinished migrations: the journal is consistent")
		return err
	}
	tw := newTable(w, "ID\tVNODE\tFROM\tTO\tFOUND IN\tSOURCE\tDESTINATION\tDONE\tOUTCOME\tRUNS ON\tTOOK")
	for _, f := range fs {
		did, outcome := strings.Join(f.Did, "; "), string(f.Outcome)
		switch {
		case f.Busy:
			outcome = "in progress (owner " + dash(f.Owner) + ")"
		case outcome == "" && f.NeedsOperator:
			outcome = "left: needs an operator"
		}
		took := "-"
		if !f.Busy {
			took = seconds(f.Took)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.VNode, f.From, f.To,
			strings.ReplaceAll(string(f.Phase), "_", " "), dash(f.Source), dash(f.Destination), dash(did), outcome,
			dash(f.RunsOn), took)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range fs {
		if f.Consistent() {
			continue
		}
		if _, err := fmt.Fprintf(w, "migration %d of %s: %s\n  next: %s\n", f.ID, f.VNode, f.Note, f.Hint); err != nil {
			return err
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
