package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/drover-hpc/drover/internal/db"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/scheduler"
	"github.com/drover-hpc/drover/sql/migrations"
)

func (a *app) dbCommand() *cobra.Command {
	c := &cobra.Command{Use: "db", Short: "Manage drover's PostgreSQL schema"}
	var down int
	migrate := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending schema migrations (or revert the newest N with --down N)",
		Args:  cobra.NoArgs,
		RunE: a.withMigrator(func(cmd *cobra.Command, m *db.Migrator) error {
			verb, none := "applied", "schema is up to date"
			run := m.Up
			if cmd.Flags().Changed("down") {
				verb, none = "reverted", "nothing to revert"
				run = func(ctx context.Context) ([]db.Migration, error) { return m.Down(ctx, down) }
			}
			did, err := run(cmd.Context())
			if err != nil {
				return err
			}
			for _, mig := range did {
				fmt.Fprintf(a.stdout, "%s %03d_%s\n", verb, mig.Version, mig.Name)
			}
			if len(did) == 0 {
				fmt.Fprintln(a.stdout, none)
			}
			return nil
		}),
	}
	migrate.Flags().IntVar(&down, "down", 0, "revert the N most recently applied migrations")

	status := &cobra.Command{
		Use:   "status",
		Short: "List schema migrations and whether each is applied",
		Args:  cobra.NoArgs,
		RunE: a.withMigrator(func(cmd *cobra.Command, m *db.Migrator) error {
			st, err := m.Status(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
			for _, s := range st {
				state, at := "pending", ""
				if s.Applied {
					state, at = "applied", s.AppliedAt.Local().Format(time.DateTime)
				}
				if s.Modified {
					state = "applied, file changed since"
				}
				fmt.Fprintf(tw, "%03d\t%s\t%s\t%s\n", s.Version, s.Name, state, at)
			}
			return tw.Flush()
		}),
	}
	c.AddCommand(migrate, status)
	return c
}

// openStore connects to the database and brings its hypervisor rows in line with the config.
// The caller runs the returned close function.
func (a *app) openStore(ctx context.Context) (*store.Store, func(), error) {
	pool, err := a.openPool(ctx)
	if err != nil {
		return nil, nil, err
	}
	return store.New(pool), pool.Close, nil
}

// openPool connects to the database and brings the hypervisors table in line with the config.
func (a *app) openPool(ctx context.Context) (*pgxpool.Pool, error) {
	pool, err := db.Connect(ctx, a.cfg.Database)
	if err != nil {
		return nil, err
	}
	if err := store.New(pool).SyncHypervisors(ctx, a.cfg.Hypervisors); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// pipeline is the placement engine with the configured policy.
func (a *app) pipeline() (*scheduler.Pipeline, error) {
	pipe, err := scheduler.NewPipeline(scheduler.Config{Policy: a.cfg.Server.Policy})
	if err != nil {
		return nil, fmt.Errorf("server.policy: %w", err)
	}
	return pipe, nil
}

// withMigrator opens the database for a db verb, runs fn with a migrator and closes it again.
func (a *app) withMigrator(fn func(*cobra.Command, *db.Migrator) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		ms, err := db.LoadMigrations(migrations.FS)
		if err != nil {
			return err
		}
		pool, err := db.Connect(cmd.Context(), a.cfg.Database)
		if err != nil {
			return err
		}
		defer pool.Close()
		return fn(cmd, db.NewMigrator(pool, ms))
	}
}
