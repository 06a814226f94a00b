package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/drover-hpc/drover/internal/bmc"
	"github.com/drover-hpc/drover/internal/check"
	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/slurm"
	"github.com/drover-hpc/drover/internal/virt"
)

// timed runs fn once and returns how long it took.
func timed(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}

func slurmProbes(cfg config.Slurm) []check.Probe {
	var ps []check.Probe
	if cfg.RestURL != "" {
		ps = append(ps, check.Probe{
			Component: "slurmrestd",
			Target:    cfg.RestURL + " (" + cfg.APIVersion + ")",
			Check: func(ctx context.Context) (check.Report, error) {
				c, err := slurm.NewREST(cfg)
				if err != nil {
					return check.Report{}, err
				}
				p, err := c.Ping(ctx)
				if err != nil {
					return check.Report{}, err
				}
				rtt, err := timed(func() error { _, err := c.Ping(ctx); return err })
				return check.Report{Version: "Slurm " + p.Version.String(), RTT: rtt}, err
			},
			Fix: func(err error) string {
				if errors.Is(err, slurm.ErrUnauthorized) {
					return fmt.Sprintf("the token for %q is missing, expired or signed with another key: "+
						"write a new one with `scontrol token username=%s lifespan=604800` into slurm.token_file", cfg.User, cfg.User)
				}
				return "start slurmrestd (rest_auth/jwt) and check slurm.rest_url; on the testbed: scripts/testbed up slurm"
			},
		})
	}
	if cfg.Scontrol != "" {
		ps = append(ps, check.Probe{
			Component: "slurmctld",
			Target:    "scontrol ping (SLURM_CONF=" + orDefault(cfg.Conf, "default") + ")",
			Check: func(ctx context.Context) (check.Report, error) {
				sc := slurm.NewScontrol(cfg)
				var p slurm.PingResult
				rtt, err := timed(func() error { var err error; p, err = sc.Ping(ctx); return err })
				if err != nil {
					return check.Report{}, err
				}
				if !p.Up() {
					return check.Report{}, fmt.Errorf("no slurmctld answers: %+v", p.Controllers)
				}
				return check.Report{Version: "scontrol " + p.Version.String(), RTT: rtt}, nil
			},
			Fix: func(error) string {
				return "start slurmctld and check slurm.conf / slurm.scontrol; on the testbed: scripts/testbed up slurm"
			},
		})
	}
	return ps
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func libvirtProbe(lv config.Libvirt, h config.Hypervisor) check.Probe {
	return check.Probe{
		Component: "libvirt " + h.Name,
		Target:    h.URI,
		Check: func(ctx context.Context) (check.Report, error) {
			c, err := virt.Connect(ctx, h.Name, h.URI)
			if err != nil {
				return check.Report{}, err
			}
			defer c.Close()
			v, err := c.Version()
			if err != nil {
				return check.Report{}, err
			}
			rtt, err := timed(func() error { _, err := c.Hostname(ctx); return err })
			return check.Report{Version: v, RTT: rtt}, err
		},
		Fix: func(err error) string {
			if errors.Is(err, virt.ErrTLS) {
				return "the TLS connection failed on certificates: see the hint above (and libvirtd's log when it refused ours); on the testbed: scripts/testbed up libvirt remakes them"
			}
			return "start libvirtd listening on that address (listen_tls for qemu+tls, listen_tcp for qemu+tcp) and check hypervisors[].uri; on the testbed: scripts/testbed up libvirt"
		},
	}
}

func bmcProbe(h config.Hypervisor) check.Probe {
	target := "in-band /dev/ipmi0"
	if h.BMC.Interface != "open" {
		port := h.BMC.Port
		if port == 0 {
			port = bmc.DefaultPort
		}
		target = net.JoinHostPort(h.BMC.Host, strconv.Itoa(port))
	}
	return check.Probe{
		Component: "bmc " + h.Name,
		Target:    target,
		Check: func(ctx context.Context) (check.Report, error) {
			c, err := bmc.Dial(ctx, h.BMC)
			if err != nil {
				return check.Report{}, err
			}
			defer c.Close(context.WithoutCancel(ctx))
			info, err := c.Info(ctx)
			if err != nil {
				return check.Report{}, err
			}
			rtt, err := timed(func() error { _, err := c.Info(ctx); return err })
			return check.Report{Version: fmt.Sprintf("IPMI %s, firmware %s", info.IPMIVersion, info.Firmware), RTT: rtt}, err
		},
		Fix: func(err error) string {
			if errors.Is(err, bmc.ErrAuth) {
				return "the BMC refused the credentials: check hypervisors[].bmc.username and password_file"
			}
			return "check the BMC's address and that IPMI over LAN is enabled (cipher suite 3); on the testbed: scripts/testbed up ipmi"
		},
	}
}
