// Command drover keeps HPC jobs on healthy, well-used, power-efficient hypervisors.
// Everything it does lives in packages; this file only hands over to the command line.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/drover-hpc/drover/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
