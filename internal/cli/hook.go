package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/hooks"
	"github.com/drover-hpc/drover/internal/hostlist"
	"github.com/drover-hpc/drover/internal/server"
	"github.com/drover-hpc/drover/internal/slurm"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/vnode"
	"github.com/drover-hpc/drover/scheduler"
)

func (a *app) hookCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "hook",
		Short: "What Slurm runs: ResumeProgram, SuspendProgram, PrologSlurmctld, EpilogSlurmctld",
		Long: `Slurm runs these through the scripts in scripts/slurm/ (see slurm.conf.drover there).
resume and suspend take Slurm's hostlist of vnodes; job-start and job-end read the job from
slurmctld's environment. Logs go to log.file (DROVER_LOG_FILE) since Slurm discards hook output.`,
	}
	c.AddCommand(
		&cobra.Command{
			Use:   "resume NODELIST",
			Short: "Boot the vnodes in NODELIST on the best hypervisors (job map in $SLURM_RESUME_FILE)",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				nodes, err := hostlist.Expand(args[0])
				if err != nil {
					return err
				}
				if f := os.Getenv("SLURM_RESUME_FILE"); f != "" {
					if b, err := os.ReadFile(f); err == nil {
						a.log.Debug().RawJSON("resume_file", jsonOrString(b)).Msg("SLURM_RESUME_FILE")
					}
				}
				jobs, err := hooks.ReadResumeFile(os.Getenv("SLURM_RESUME_FILE"))
				if err != nil {
					// the node list alone is enough to boot the vnodes; only job details are lost
					a.log.Warn().Err(err).Msg("resuming without job details")
				}
				return a.withHooks(cmd.Context(), func(h *hooks.Hooks) error {
					outs, err := h.Resume(cmd.Context(), nodes, jobs)
					for _, o := range outs {
						fmt.Fprintf(a.stdout, "%s\t%s\t%s\t%s\n", o.Node, o.Action, o.Hypervisor, o.Reason)
					}
					return err
				})
			},
		},
		&cobra.Command{
			Use:   "suspend NODELIST",
			Short: "Power the vnodes in NODELIST down (destroy their VMs)",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				nodes, err := hostlist.Expand(args[0])
				if err != nil {
					return err
				}
				return a.withHooks(cmd.Context(), func(h *hooks.Hooks) error {
					outs, err := h.Suspend(cmd.Context(), nodes)
					for _, o := range outs {
						fmt.Fprintf(a.stdout, "%s\t%s\t%s\t%s\n", o.Node, o.Action, o.Hypervisor, o.Reason)
					}
					return err
				})
			},
		},
		a.jobHookCommand("job-start", "Record the job slurmctld is starting (PrologSlurmctld)", (*hooks.Hooks).JobStart),
		a.jobHookCommand("job-end", "Record the job's end and exit code (EpilogSlurmctld)", (*hooks.Hooks).JobEnd),
	)
	return c
}

func (a *app) jobHookCommand(use, short string, fn func(*hooks.Hooks, context.Context, hooks.JobSource, store.Job) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			j, err := hooks.JobFromEnv(os.Getenv)
			if err != nil {
				return err
			}
			var src hooks.JobSource
			if a.cfg.Slurm.RestURL != "" {
				if c, err := slurm.NewREST(a.cfg.Slurm); err == nil {
					src = c
				} else {
					a.log.Warn().Err(err).Msg("no slurmrestd client")
				}
			}
			return a.withHooks(cmd.Context(), func(h *hooks.Hooks) error { return fn(h, cmd.Context(), src, j) })
		},
	}
}

// withHooks connects what the hooks need, runs fn and logs its outcome (Slurm keeps no hook output).
func (a *app) withHooks(ctx context.Context, fn func(*hooks.Hooks) error) error {
	start := time.Now()
	err := func() error {
		cat, err := vnode.NewCatalog(a.cfg.Vnodes, a.cfg.Libvirt.DomainType)
		if err != nil {
			return err
		}
		st, closeDB, err := a.openStore(ctx)
		if err != nil {
			return err
		}
		defer closeDB()
		h := &hooks.Hooks{
			Store: st, Catalog: cat, Hypervisors: a.cfg.Hypervisors, Placer: scheduler.LeastLoaded{},
			Slurm: slurm.NewScontrol(a.cfg.Slurm), Log: a.log, ConnectTimeout: a.cfg.Libvirt.ConnectTimeout,
		}
		if sc := a.cfg.Server; sc.URL != "" {
			token, err := config.Secret(sc.Token, sc.TokenFile, "server.token_file")
			if err != nil {
				return err
			}
			h.Server = &server.Client{URL: sc.URL, Token: token}
		}
		if a.cfg.Slurm.RestURL != "" {
			if c, err := slurm.NewREST(a.cfg.Slurm); err == nil {
				h.Jobs = c
			} else {
				a.log.Warn().Err(err).Msg("no slurmrestd client: placing without the job's time limit and hints")
			}
		}
		return fn(h)
	}()
	ev := a.log.Info()
	if err != nil {
		ev = a.log.Error().Err(err)
	}
	ev.Strs("args", os.Args[1:]).Dur("took", time.Since(start)).Msg("hook done")
	return err
}

// jsonOrString returns b when it is valid JSON, else b quoted as a JSON string, for logging.
func jsonOrString(b []byte) []byte {
	if json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(string(b))
	return q
}
