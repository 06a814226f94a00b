package vnode

import (
	"strings"
	"testing"

	"github.com/drover-hpc/drover/internal/config"
)

func TestCatalog(t *testing.T) {
	cfg := config.Vnodes{Nodes: "vn[1-3]", FirstAddress: "198.18.0.11/24", Bridge: "br0", CPUs: 1, MemoryMiB: 512,
		Kernel: "/img/vmlinuz", Initrd: "/img/initrd", Cmdline: "console=ttyS0", SerialDir: "/var/log/vnodes", Gateway: "198.18.0.1"}
	c, err := NewCatalog(cfg, "qemu")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Names(), ","); got != "vn1,vn2,vn3" {
		t.Fatalf("names = %s", got)
	}
	n, ok := c.Lookup("vn3")
	// vn3 is index 2: 198.18.0.11 + 2 = .13 = 0x0d; MAC from bytes 18.0.13 = 12:00:0d
	if !ok || n.Address.String() != "198.18.0.13/24" || n.MAC != "52:54:00:12:00:0d" || n.Index != 2 {
		t.Fatalf("vn3 = %+v", n)
	}
	if c.Has("n1") || c.Has("vn4") {
		t.Fatal("Has accepts names outside the catalog")
	}
	s := c.Spec(n)
	if s.Name != "vn3" || s.NIC == nil || s.NIC.MAC != n.MAC || s.NIC.Bridge != "br0" || s.SerialLog != "/var/log/vnodes/vn3.log" {
		t.Fatalf("spec = %+v", s)
	}
	if s.Cmdline != "console=ttyS0 vnode=vn3 vip=198.18.0.13/24 vgw=198.18.0.1" {
		t.Fatalf("cmdline = %q", s.Cmdline)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("spec does not validate: %v", err)
	}
}

func TestCatalogErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  config.Vnodes
		want string
	}{
		{config.Vnodes{Nodes: "vn[1-", FirstAddress: "198.18.0.11/24"}, "vnodes.nodes"},
		{config.Vnodes{Nodes: "vn1", FirstAddress: "fe80::1/64"}, "vnodes.first_address"},
		{config.Vnodes{Nodes: "vn[1-10]", FirstAddress: "198.18.0.250/24"}, "run past the /24"},
	} {
		if _, err := NewCatalog(tc.cfg, "qemu"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	c, err := NewCatalog(config.Vnodes{}, "qemu")
	if err != nil || len(c.Names()) != 0 {
		t.Fatalf("empty config: %v %v", c, err)
	}
}
