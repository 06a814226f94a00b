package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/drover-hpc/drover/internal/server"
	"github.com/drover-hpc/drover/internal/slurm"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/vnode"
	"github.com/drover-hpc/drover/migrate"
	"github.com/drover-hpc/drover/scheduler"
)

func init() {
	verbs = append(verbs, (*app).plansCommand, (*app).approveCommand, (*app).rejectCommand,
		(*app).drainCommand, (*app).undrainCommand)
}

// controlConfig is the control section as the server package takes it.
func (a *app) controlConfig(instance string) server.ControlConfig {
	k := a.cfg.Control
	bw := 0.0
	if a.cfg.Migration.BandwidthMiBs > 0 {
		bw = float64(a.cfg.Migration.BandwidthMiBs) * (1 << 20)
	}
	cc := server.ControlConfig{Mode: k.Mode, Period: k.Period, Instance: instance,
		Rebalance: scheduler.RebalanceConfig{Aggressiveness: k.Aggressiveness, Horizon: k.Horizon, Cooldown: k.Cooldown,
			MaxMovesPerCycle: k.MaxMovesPerCycle, MaxMovesPerHost: k.MaxMovesPerHost, Hysteresis: k.Hysteresis,
			Spares: k.Spares, BandwidthBytesPerSec: bw},
		MaxPerHypervisor: a.cfg.Migration.MaxPerHypervisor, MaxConcurrent: a.cfg.Migration.MaxConcurrent}
	if cat, err := vnode.NewCatalog(a.cfg.Vnodes, a.cfg.Libvirt.DomainType); err == nil {
		cc.SerialLog = func(vn string) string {
			if cat.Has(vn) {
				return cat.SerialLog(vn)
			}
			return ""
		}
	}
	return cc
}

// controller builds the control loop's controller on pool: a migration executor over a libvirt
// connection pool, scontrol to drain hypervisors that are Slurm nodes. The caller runs the
// returned close function.
func (a *app) controller(pool *pgxpool.Pool, pipe *scheduler.Pipeline, instance string, log zerolog.Logger) (*server.Controller, func(), error) {
	conns := migrate.NewPool(a.cfg.Hypervisors, a.cfg.Libvirt.ConnectTimeout)
	// progress every 100 ms: a small guest's transfer can end within the default 250 ms, and the
	// first byte is then only journaled when libvirt returns
	ex := migrate.New(a.cfg.Migration, store.New(pool), conns, log, migrate.WithProgressInterval(100*time.Millisecond))
	cc := a.controlConfig(instance)
	cc.Warm = func(ctx context.Context) { // connect before the first evacuation needs it
		for _, h := range a.cfg.Hypervisors {
			if _, err := conns.Conn(ctx, h.Name); err != nil && ctx.Err() == nil {
				log.Warn().Str("hypervisor", h.Name).Err(err).Msg("connect to libvirt (the migration executor retries when it needs it)")
			}
		}
	}
	c, err := server.NewController(cc, pool, pipe, ex, slurm.NewScontrol(a.cfg.Slurm), log)
	if err != nil {
		_ = conns.Close()
		return nil, nil, err
	}
	return c, func() { _ = conns.Close() }, nil
}

// withController connects, syncs the hypervisor rows and runs fn with a controller.
func (a *app) withController(ctx context.Context, fn func(*server.Controller) error) error {
	pipe, err := a.pipeline()
	if err != nil {
		return err
	}
	pool, err := a.openPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	log := a.log
	if log.GetLevel() == zerolog.InfoLevel {
		log = log.Level(zerolog.WarnLevel) // the command prints what the info lines would say
	}
	c, closeConns, err := a.controller(pool, pipe, operator(), log)
	if err != nil {
		return err
	}
	defer closeConns()
	return fn(c)
}

// operator names who runs the command, for the plans table and hypervisor reasons.
func operator() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

func planID(arg string) (int64, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%q is not a plan id (a positive number from drover plans)", arg)
	}
	return id, nil
}

func (a *app) plansCommand() *cobra.Command {
	var all, asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "plans",
		Short: "Plans the control loop proposed (recommend mode), waiting for drover approve or reject",
		Long: `plans lists the plans the leading drover server proposed in recommend mode (control.mode:
recommend): per plan its moves (vnode, from, to, reason, estimated duration) and why. Approve one
with drover approve ID, reject it with drover reject ID. --all shows decided plans too, with what
became of them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withController(cmd.Context(), func(c *server.Controller) error {
				ps, err := c.Plans(cmd.Context(), limit, all)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(a.stdout).Encode(plansJSON(ps))
				}
				if len(ps) == 0 {
					what := "pending plans"
					if all {
						what = "plans"
					}
					fmt.Fprintf(a.stdout, "no %s (plans are proposed when control.mode is recommend)\n", what)
					return nil
				}
				return writePlans(a.stdout, ps)
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "show decided plans too")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&limit, "limit", 20, "newest plans to show")
	return cmd
}

type planOut struct {
	ID         int64            `json:"id"`
	CreatedAt  time.Time        `json:"created_at"`
	Kind       string           `json:"kind"`
	State      string           `json:"state"`
	Reason     string           `json:"reason"`
	Moves      []scheduler.Move `json:"moves"`
	DecidedBy  string           `json:"decided_by,omitempty"`
	DecidedAt  *time.Time       `json:"decided_at,omitempty"`
	Outcome    string           `json:"outcome,omitempty"`
	ProposedBy string           `json:"proposed_by,omitempty"`
}

func plansJSON(ps []store.Plan) []planOut {
	out := make([]planOut, 0, len(ps))
	for _, p := range ps {
		o := planOut{ID: p.ID, CreatedAt: p.CreatedAt, Kind: p.Kind, State: p.State, Reason: p.Reason, DecidedBy: p.DecidedBy,
			DecidedAt: p.DecidedAt, Outcome: p.Outcome, ProposedBy: p.ProposedBy, Moves: []scheduler.Move{}}
		_ = json.Unmarshal(p.Actions, &o.Moves)
		out = append(out, o)
	}
	return out
}

func writePlans(w interface{ Write([]byte) (int, error) }, ps []store.Plan) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLAN\tCREATED\tKIND\tSTATE\tMOVE\tVNODE\tFROM\tTO\tREASON\tEST")
	for _, p := range plansJSON(ps) {
		state := p.State
		if state == "pending" {
			state = "pending (proposed)"
		}
		if len(p.Moves) == 0 {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\n", p.ID, p.CreatedAt.Local().Format("01-02 15:04:05"), p.Kind, state)
		}
		for i, m := range p.Moves {
			id, at, kind, st := strconv.FormatInt(p.ID, 10), p.CreatedAt.Local().Format("01-02 15:04:05"), p.Kind, state
			if i > 0 {
				id, at, kind, st = "", "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", id, at, kind, st, m.Priority, m.VNode, m.From, m.To, m.Reason,
				m.EstDuration.Round(100*time.Millisecond))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range plansJSON(ps) {
		fmt.Fprintf(w, "\nplan %d: %s\n", p.ID, p.Reason)
		for _, m := range p.Moves {
			fmt.Fprintf(w, "  %d. %s: %s\n", m.Priority, m.VNode, m.Why)
		}
		if p.Outcome != "" || p.DecidedBy != "" {
			fmt.Fprintf(w, "  %s by %s: %s\n", p.State, dash(p.DecidedBy), dash(p.Outcome))
		}
	}
	return nil
}

func (a *app) approveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "approve ID",
		Short: "Re-validate a proposed plan against the cluster now and run its moves",
		Long: `approve checks the plan against the cluster as it is now: every vnode must still run on its
move's source and may still move, every target must still take it. If anything changed the plan is
marked stale, with the reason, and nothing moves. Otherwise its moves run in order (live
migrations, journaled with the plan's id) and the plan ends applied or failed with each move's
outcome.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := planID(args[0])
			if err != nil {
				return err
			}
			return a.withController(cmd.Context(), func(c *server.Controller) error {
				fmt.Fprintf(a.stderr, "plan %d: re-validating and running its moves…\n", id)
				_, err := c.Approve(cmd.Context(), id, operator(), func(o server.MoveOutcome) {
					if o.Err != nil {
						fmt.Fprintf(a.stderr, "  %s %s→%s: %v\n", o.Move.VNode, o.Move.From, o.Move.To, o.Err)
						return
					}
					fmt.Fprintf(a.stdout, "  %s %s→%s: done (migration %d)\n", o.Move.VNode, o.Move.From, o.Move.To, o.Migration)
				})
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				fmt.Fprintf(a.stdout, "plan %d applied\n", id)
				return nil
			})
		},
	}
}

func (a *app) rejectCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "reject ID",
		Short: "Reject a proposed plan: nothing moves, the reason is recorded",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := planID(args[0])
			if err != nil {
				return err
			}
			return a.withController(cmd.Context(), func(c *server.Controller) error {
				if err := c.Reject(cmd.Context(), id, operator(), reason); err != nil {
					return &exitError{code: 1, err: err}
				}
				fmt.Fprintf(a.stdout, "plan %d rejected\n", id)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with the plan")
	return cmd
}

func (a *app) drainCommand() *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "drain HYPERVISOR",
		Short: "Empty a hypervisor for maintenance and keep it empty",
		Long: `drain sets the hypervisor draining: no new vnode is placed there, and the leading drover
server live-migrates its vnodes away (reason drain, in auto and recommend mode alike) and marks it
drained once none is left. --wait shows progress until then. drover undrain HYPERVISOR makes it
active again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			hv := args[0]
			return a.withController(ctx, func(c *server.Controller) error {
				old, err := c.Drain(ctx, hv, operator())
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				fmt.Fprintf(a.stdout, "%s: %s → draining (the leading drover server evacuates it)\n", hv, old)
				if old == "down" || old == "maintenance" {
					fmt.Fprintf(a.stderr, "warning: %s was %s: its vnodes may not be reachable for live migration\n", hv, old)
				}
				if !wait {
					return nil
				}
				if timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, timeout)
					defer cancel()
				}
				return a.waitDrained(ctx, c, hv)
			})
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "show progress until the hypervisor is empty")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "with --wait: give up waiting after this long (0: never)")
	return cmd
}

// waitDrained prints hv's vnodes as they leave until it is drained.
func (a *app) waitDrained(ctx context.Context, c *server.Controller, hv string) error {
	last := ""
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		d, err := c.DrainProgress(ctx, hv)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil {
			line := fmt.Sprintf("%s: %s, %d vnodes left", hv, d.State, len(d.VNodes))
			if len(d.VNodes) > 0 {
				line += ": " + strings.Join(d.VNodes, ", ")
			}
			if line != last {
				fmt.Fprintf(a.stderr, "%s %s\n", time.Now().Format("15:04:05"), line)
				last = line
			}
			switch d.State {
			case "drained":
				fmt.Fprintf(a.stdout, "%s drained\n", hv)
				return nil
			case "draining":
			default:
				return &exitError{code: 1, err: fmt.Errorf("%s is %s now (%s): no longer draining", hv, d.State, d.Reason)}
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &exitError{code: 1, err: fmt.Errorf("%s is still draining (%s): is a drover server leading? (drover server, its log)", hv, last)}
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (a *app) undrainCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "undrain HYPERVISOR",
		Short: "Make a drained (or draining) hypervisor active again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withController(cmd.Context(), func(c *server.Controller) error {
				old, err := c.Undrain(cmd.Context(), args[0], operator())
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				fmt.Fprintf(a.stdout, "%s: %s → active\n", args[0], old)
				return nil
			})
		},
	}
}

// instanceName names this server process (host:pid) in logs, plans and the journal.
func instanceName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}
