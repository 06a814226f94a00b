package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/drover-hpc/drover/internal/hostlist"
)

// Validate checks values that are well-typed but meaningless. Each error names the key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of trace, debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "console", "json":
	default:
		bad("log.format", "%q is not one of console, json", c.Log.Format)
	}
	if c.Database.MaxConns < 1 {
		bad("database.max_conns", "must be at least 1, got %d", c.Database.MaxConns)
	}
	if c.Slurm.RestURL != "" {
		if u, err := url.Parse(c.Slurm.RestURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("slurm.rest_url", "%q is not an http(s) URL", c.Slurm.RestURL)
		}
	}
	switch c.Libvirt.DomainType {
	case "qemu", "kvm":
	default:
		bad("libvirt.domain_type", "%q is not one of qemu (software emulation), kvm", c.Libvirt.DomainType)
	}
	seen := map[string]bool{}
	for i, h := range c.Hypervisors {
		key := fmt.Sprintf("hypervisors[%d]", i)
		switch {
		case h.Name == "":
			bad(key+".name", "missing")
		case seen[h.Name]:
			bad(key+".name", "%q is listed twice", h.Name)
		}
		seen[h.Name] = true
		if h.URI == "" {
			bad(key+".uri", "missing (e.g. qemu+tcp://host/system)")
		}
		switch h.BMC.Interface {
		case "", "lanplus", "lan", "open":
		default:
			bad(key+".bmc.interface", "%q is not one of lanplus, lan, open", h.BMC.Interface)
		}
		if h.BMC.Port < 0 || h.BMC.Port > 65535 {
			bad(key+".bmc.port", "%d is not a port number", h.BMC.Port)
		}
	}
	if c.Vnodes.Nodes != "" {
		if _, err := hostlist.Expand(c.Vnodes.Nodes); err != nil {
			bad("vnodes.nodes", "%v", err)
		}
		if p, err := netip.ParsePrefix(c.Vnodes.FirstAddress); err != nil || !p.Addr().Is4() {
			bad("vnodes.first_address", "%q is not an IPv4 address with prefix length, e.g. 198.18.0.11/24", c.Vnodes.FirstAddress)
		}
		if c.Vnodes.Gateway != "" {
			if _, err := netip.ParseAddr(c.Vnodes.Gateway); err != nil {
				bad("vnodes.gateway", "%q is not an address", c.Vnodes.Gateway)
			}
		}
		if c.Vnodes.Kernel == "" {
			bad("vnodes.kernel", "missing: the vnode kernel's path on the hypervisors")
		}
		if c.Vnodes.CPUs < 1 || c.Vnodes.MemoryMiB < 64 {
			bad("vnodes", "cpus must be at least 1 and memory_mib at least 64 (got %d, %d)", c.Vnodes.CPUs, c.Vnodes.MemoryMiB)
		}
	}
	if c.Migration.MaxDowntime < 0 || c.Migration.BandwidthMiBs < 0 || c.Migration.Timeout <= 0 || c.Migration.VerifyFor < 0 {
		bad("migration", "max_downtime, bandwidth_mibs and verify_for must not be negative, timeout must be positive")
	}
	if c.Migration.MaxPerHypervisor < 0 || c.Migration.MaxConcurrent < 0 {
		bad("migration", "max_per_hypervisor and max_concurrent must not be negative (got %d, %d)",
			c.Migration.MaxPerHypervisor, c.Migration.MaxConcurrent)
	}
	if a := c.Migration.TimeoutAction; a != "abort" && a != "postcopy" {
		bad("migration.timeout_action", "%q is neither abort nor postcopy", a)
	}
	c.validateAgent(bad)
	c.validateServer(bad)
	c.validateControl(bad)
	return errors.Join(errs...)
}

// Hypervisor returns the configured hypervisor with that name.
func (c *Config) Hypervisor(name string) (Hypervisor, bool) {
	for _, h := range c.Hypervisors {
		if h.Name == name {
			return h, true
		}
	}
	return Hypervisor{}, false
}

// Secret returns value, or else the contents of file with surrounding white space trimmed.
// what names the setting in errors; the secret itself never appears in one.
func Secret(value, file, what string) (string, error) {
	if value != "" {
		return value, nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: read %s: %w", what, file, err)
	}
	return strings.TrimSpace(string(b)), nil
}
