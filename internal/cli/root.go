// Package cli is drover's command line (cobra): it loads the configuration, builds the logger and
// the clients a verb needs, and calls into drover's packages. Verbs hold no business logic.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/logging"
)

// app is the state shared by every verb of one invocation.
type app struct {
	stdout, stderr io.Writer
	configPath     string
	flags          *pflag.FlagSet
	cfg            *config.Config
	log            zerolog.Logger
}

// exitError carries a specific exit code through cobra (e.g. `check` finding a component down).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Execute runs drover with args and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(stderr, "drover: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "drover: %v\n", err)
	return 1
}

func defaultConfigPath() (string, bool) {
	if p := os.Getenv("DROVER_CONFIG"); p != "" {
		return p, true
	}
	return config.DefaultPath, false
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "drover",
		Short: "Keep Slurm jobs on healthy, well-used, power-efficient hypervisors",
		Long: `drover places the VMs behind Slurm's migratable nodes on the best hypervisor, watches
hypervisor health and load, and live-migrates VMs away from trouble while their jobs run.

Configuration comes from the file given by --config (default $DROVER_CONFIG, else
/etc/drover/drover.yaml), then DROVER_* environment variables, then flags.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Annotations["config"] == "none" {
				return nil
			}
			return a.load(cmd)
		},
	}
	def, _ := defaultConfigPath()
	pf := root.PersistentFlags()
	pf.StringVar(&a.configPath, "config", def, "config file (YAML)")
	pf.String("log-level", "info", "log level: trace, debug, info, warn, error")
	pf.String("log-format", "console", "log format: console or json")
	a.flags = pf

	root.AddCommand(a.versionCommand(), a.dbCommand(), a.checkCommand(), a.hookCommand(), a.migrateCommand())
	for _, verb := range verbs {
		root.AddCommand(verb(a))
	}
	return root
}

// verbs are the top-level verbs that register themselves from their own file (an init func
// appending to this list), so verbs can be added without touching this file.
var verbs []func(*app) *cobra.Command

// load reads the configuration and builds the logger; every verb but `version` runs it first.
func (a *app) load(cmd *cobra.Command) error {
	_, envSet := defaultConfigPath()
	cfg, err := config.Load(config.Source{
		Path:     a.configPath,
		Explicit: envSet || cmd.Flags().Changed("config"),
		Flags: map[string]*pflag.Flag{
			"log.level":  a.flags.Lookup("log-level"),
			"log.format": a.flags.Lookup("log-format"),
		},
	})
	if err != nil {
		return err
	}
	w := a.stderr
	if cfg.Log.File != "" {
		f, err := os.OpenFile(cfg.Log.File, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
		if err != nil {
			return fmt.Errorf("log.file: %w", err)
		}
		w = f // open for the life of the process
	}
	log, err := logging.New(cfg.Log, w)
	if err != nil {
		return err
	}
	a.cfg, a.log = cfg, log
	return nil
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:         "version",
		Short:       "Print drover's version",
		Args:        cobra.NoArgs,
		Annotations: map[string]string{"config": "none"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(a.stdout, versionString())
			return err
		},
	}
}
