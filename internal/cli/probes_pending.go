package cli

import (
	"context"
	"errors"

	"github.com/drover-hpc/drover/internal/check"
	"github.com/drover-hpc/drover/internal/config"
)

var errPending = errors.New("probe not wired yet")

func slurmProbes(cfg config.Slurm) []check.Probe { return nil }

func libvirtProbe(lv config.Libvirt, h config.Hypervisor) check.Probe {
	return check.Probe{Component: "libvirt " + h.Name, Target: h.URI, Check: func(context.Context) (check.Report, error) { return check.Report{}, errPending }}
}

func bmcProbe(h config.Hypervisor) check.Probe {
	return check.Probe{Component: "bmc " + h.Name, Target: h.BMC.Host, Check: func(context.Context) (check.Report, error) { return check.Report{}, errPending }}
}
