// Package vnode knows drover's vnodes: the Slurm nodes that are VMs. From the configuration it
// derives each vnode's address, MAC and domain definition, identical on every hypervisor, so a
// vnode keeps its identity wherever it runs or moves.
package vnode

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/hostlist"
	"github.com/drover-hpc/drover/internal/virt"
)

// Node is one vnode.
type Node struct {
	Name    string
	Index   int          // position in vnodes.nodes, from 0
	Address netip.Prefix // e.g. 198.18.0.11/24
	MAC     string       // 52:54:00 followed by the last three bytes of the address
}

// Catalog is the set of configured vnodes.
type Catalog struct {
	cfg   config.Vnodes
	typ   virt.DomainType
	nodes map[string]Node
	names []string
}

// NewCatalog expands cfg.Nodes and assigns addresses. An empty Nodes gives an empty catalog.
func NewCatalog(cfg config.Vnodes, domainType string) (*Catalog, error) {
	c := &Catalog{cfg: cfg, typ: virt.DomainType(domainType), nodes: map[string]Node{}}
	if strings.TrimSpace(cfg.Nodes) == "" {
		return c, nil
	}
	names, err := hostlist.Expand(cfg.Nodes)
	if err != nil {
		return nil, fmt.Errorf("vnodes.nodes: %w", err)
	}
	first, err := netip.ParsePrefix(cfg.FirstAddress)
	if err != nil || !first.Addr().Is4() {
		return nil, fmt.Errorf("vnodes.first_address: %q is not an IPv4 address/prefix", cfg.FirstAddress)
	}
	addr := first.Addr()
	for i, n := range names {
		if i > 0 {
			addr = addr.Next()
		}
		if !first.Contains(addr) {
			return nil, fmt.Errorf("vnodes: %d vnodes from %s run past the /%d network at %s", len(names), first, first.Bits(), n)
		}
		b := addr.As4()
		c.nodes[n] = Node{Name: n, Index: i, Address: netip.PrefixFrom(addr, first.Bits()),
			MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[1], b[2], b[3])}
		c.names = append(c.names, n)
	}
	return c, nil
}

// Names lists the vnodes in configuration order.
func (c *Catalog) Names() []string { return append([]string(nil), c.names...) }

// Lookup returns the vnode called name.
func (c *Catalog) Lookup(name string) (Node, bool) {
	n, ok := c.nodes[name]
	return n, ok
}

// Has reports whether name is a vnode; domains of other names on a hypervisor are not drover's.
func (c *Catalog) Has(name string) bool { _, ok := c.nodes[name]; return ok }

// SerialLog is the file the vnode's console is written to, or "" when not configured.
func (c *Catalog) SerialLog(name string) string {
	if c.cfg.SerialDir == "" {
		return ""
	}
	return filepath.Join(c.cfg.SerialDir, name+".log")
}

// Spec is the vnode's domain definition. The kernel command line tells the vnode's init its
// Slurm node name and address (vnode=, vip=, vgw=).
func (c *Catalog) Spec(n Node) virt.DomainSpec {
	cmd := strings.TrimSpace(fmt.Sprintf("%s vnode=%s vip=%s", c.cfg.Cmdline, n.Name, n.Address))
	if c.cfg.Gateway != "" {
		cmd += " vgw=" + c.cfg.Gateway
	}
	s := virt.DomainSpec{
		Name:      n.Name,
		MemoryMiB: c.cfg.MemoryMiB,
		VCPUs:     c.cfg.CPUs,
		Type:      c.typ,
		Kernel:    c.cfg.Kernel,
		Initrd:    c.cfg.Initrd,
		Cmdline:   cmd,
		SerialLog: c.SerialLog(n.Name),
	}
	if c.cfg.Bridge != "" {
		s.NIC = &virt.NIC{Bridge: c.cfg.Bridge, MAC: n.MAC}
	}
	return s
}
