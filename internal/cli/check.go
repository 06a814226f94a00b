package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-hpc/drover/internal/check"
	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/db"
)

func (a *app) checkCommand() *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "check",
		Short: "Connect to every configured component and report what answers",
		Long: `check connects to PostgreSQL, slurmrestd, slurmctld (through scontrol), every libvirt
hypervisor and every BMC, and prints one row per component: reachable or not, its version and the
round-trip latency of one request. For each failure it says what to fix. It exits non-zero when
any component is unreachable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs := check.Run(cmd.Context(), probes(a.cfg), timeout)
			if err := check.Print(a.stdout, rs); err != nil {
				return err
			}
			if n := check.Failed(rs); n > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d components unreachable", n, len(rs))}
			}
			return nil
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long each component may take to answer")
	return c
}

// probes builds one probe per configured component.
func probes(cfg *config.Config) []check.Probe {
	ps := []check.Probe{postgresProbe(cfg.Database)}
	ps = append(ps, slurmProbes(cfg.Slurm)...)
	for _, h := range cfg.Hypervisors {
		ps = append(ps, libvirtProbe(cfg.Libvirt, h))
		if h.BMC.Host != "" || h.BMC.Interface == "open" {
			ps = append(ps, bmcProbe(h))
		}
	}
	return ps
}

func postgresProbe(cfg config.Database) check.Probe {
	target := "(database.url not set)"
	if pc, err := db.PoolConfig(cfg); err == nil {
		target = db.Describe(pc)
	}
	return check.Probe{
		Component: "postgres",
		Target:    target,
		Check: func(ctx context.Context) (check.Report, error) {
			pool, err := db.Connect(ctx, cfg)
			if err != nil {
				return check.Report{}, err
			}
			defer pool.Close()
			var version string
			if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
				return check.Report{}, err
			}
			start := time.Now()
			if _, err := pool.Exec(ctx, "SELECT 1"); err != nil {
				return check.Report{}, err
			}
			return check.Report{Version: "PostgreSQL " + strings.Fields(version)[0], RTT: time.Since(start)}, nil
		},
		Fix: func(err error) string {
			return "start PostgreSQL (scripts/testbed up pg on the testbed) and check database.url / database.password_file"
		},
	}
}
