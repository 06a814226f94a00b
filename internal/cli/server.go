package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/fleet"
	"github.com/drover-hpc/drover/internal/server"
	"github.com/drover-hpc/drover/scheduler"
)

func init() { verbs = append(verbs, (*app).serverCommand, (*app).explainCommand) }

func (a *app) serverCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "server",
		Short: "Run the drover server: placement API for the hooks, fleet view, leader election",
		Long: `drover server serves the authenticated HTTP API the Slurm hooks and the CLI use
(server.listen, token from server.token_file), keeps a view of every hypervisor from the agents'
KPIs and health events, and takes part in leader election: of several servers on one database
only the one holding the leader lock decides. Stop it with SIGTERM or Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			sc := a.cfg.Server
			token, err := config.Secret(sc.Token, sc.TokenFile, "server.token_file")
			if err != nil {
				return err
			}
			pipe, err := a.pipeline()
			if err != nil {
				return err
			}
			pool, err := a.openPool(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()
			ctl, closeCtl, err := a.controller(pool, pipe, instanceName(), a.log)
			if err != nil {
				return err
			}
			defer closeCtl()
			srv, err := server.New(server.Config{Listen: sc.Listen, Token: token, Refresh: sc.Refresh,
				Prober: libvirtProber{a.cfg.Hypervisors}, Control: ctl, Instance: instanceName(),
				Fleet: fleet.Options{TempWarnC: sc.TempWarnC, TempCritC: sc.TempCritC}}, pool, pipe, a.log)
			if err != nil {
				return err
			}
			return srv.Run(ctx)
		},
	}
}

var jobIDRE = regexp.MustCompile(`^[0-9]+$`)

func (a *app) explainCommand() *cobra.Command {
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain JOB|VNODE",
		Short: "Why a vnode was placed where it was: every hypervisor's filter verdict or scores",
		Long: `explain prints the newest placement decisions of a vnode, or of every vnode of a job (a
number), as a table: per hypervisor the filter that dropped it or each scorer's value and the total.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var vnode string
			var job int64
			if jobIDRE.MatchString(args[0]) {
				n, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil {
					return fmt.Errorf("job id %q: %w", args[0], err)
				}
				job = n
			} else if nameRE.MatchString(args[0]) {
				vnode = args[0]
			} else {
				return fmt.Errorf("%q is neither a job id nor a vnode name", args[0])
			}
			st, closeDB, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer closeDB()
			recs, err := st.PlacementsFor(ctx, vnode, job, limit)
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				return &exitError{code: 1, err: fmt.Errorf("no placement decision recorded for %s", args[0])}
			}
			if asJSON {
				out := make([]json.RawMessage, len(recs))
				for i, r := range recs {
					out[i] = r.ExplainRaw
				}
				return json.NewEncoder(a.stdout).Encode(out)
			}
			for _, r := range recs {
				job := "-"
				if r.JobID != nil {
					job = strconv.FormatInt(*r.JobID, 10)
				}
				fmt.Fprintf(a.stdout, "placement %d at %s: vnode %s, job %s → %s (%s, policy %s)\n",
					r.ID, r.At.Format("2006-01-02 15:04:05"), r.VNode, job, orDash(r.Hypervisor), r.Outcome, r.Policy)
				var d scheduler.Decision
				if err := json.Unmarshal(r.ExplainRaw, &d); err != nil || len(d.Verdicts) == 0 {
					fmt.Fprintf(a.stdout, "  %s\n  (no per-host explanation stored)\n\n", r.Reason)
					continue
				}
				if err := d.WriteTable(a.stdout); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 5, "newest decisions to show")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the stored explain documents as JSON")
	return cmd
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
