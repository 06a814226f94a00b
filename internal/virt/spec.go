package virt

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// DomainType is the libvirt domain type: how QEMU runs the guest.
type DomainType string

const (
	// TypeQEMU is plain QEMU with TCG binary translation: slow, works everywhere, including inside
	// VMs without nested virtualisation (the testbed).
	TypeQEMU DomainType = "qemu"
	// TypeKVM uses hardware virtualisation through /dev/kvm: what real hypervisors run.
	TypeKVM DomainType = "kvm"
)

// Limits DomainSpec.Validate enforces.
const (
	MaxVCPUs     = 256
	MaxMemoryMiB = 4 << 20 // 4 TiB
	maxCmdline   = 2047    // x86 COMMAND_LINE_SIZE minus the terminating NUL
	maxIfName    = 15      // IFNAMSIZ minus the terminating NUL
)

// DomainSpec is everything drover decides about a VM it starts: a disk-less guest booted straight
// from a kernel and an initramfs, a serial console written to a file, and optionally one virtio
// NIC on a bridge. XML turns it into libvirt domain XML.
type DomainSpec struct {
	Name      string     // domain name, unique per hypervisor: letters, digits, '.', '_', '-'
	MemoryMiB int        // guest memory
	VCPUs     int        // virtual CPUs
	Type      DomainType // qemu or kvm; empty means qemu
	Kernel    string     // absolute path of the kernel image on the hypervisor
	Initrd    string     // absolute path of the initramfs on the hypervisor; may be empty
	Cmdline   string     // kernel command line, e.g. "console=ttyS0 dirty_mb=64"
	SerialLog string     // absolute path of the file the serial console is appended to; empty: a pty
	NIC       *NIC       // optional network interface
}

// NIC is a virtio network interface attached to a host bridge.
type NIC struct {
	Bridge string // host bridge, e.g. br0; it must exist on every hypervisor the domain runs on
	MAC    string // unicast MAC, e.g. 52:54:00:12:34:56; empty lets libvirt choose (then it changes
	// when the domain is defined again, so set it for VMs that must keep their address)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks the spec; its error names the field that is wrong and every problem found.
func (s DomainSpec) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if !nameRE.MatchString(s.Name) {
		bad("Name", "%q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", s.Name)
	}
	if s.MemoryMiB <= 0 || s.MemoryMiB > MaxMemoryMiB {
		bad("MemoryMiB", "%d must be between 1 and %d", s.MemoryMiB, MaxMemoryMiB)
	}
	if s.VCPUs <= 0 || s.VCPUs > MaxVCPUs {
		bad("VCPUs", "%d must be between 1 and %d", s.VCPUs, MaxVCPUs)
	}
	switch s.Type {
	case "", TypeQEMU, TypeKVM:
	default:
		bad("Type", "%q must be %q or %q", s.Type, TypeQEMU, TypeKVM)
	}
	if s.Kernel == "" {
		bad("Kernel", "is required: the guest boots from a kernel image")
	} else if err := checkPath(s.Kernel); err != nil {
		bad("Kernel", "%v", err)
	}
	if s.Initrd != "" {
		if err := checkPath(s.Initrd); err != nil {
			bad("Initrd", "%v", err)
		}
	}
	if len(s.Cmdline) > maxCmdline {
		bad("Cmdline", "is %d bytes, the kernel takes at most %d", len(s.Cmdline), maxCmdline)
	}
	if i := strings.IndexFunc(s.Cmdline, isControl); i >= 0 {
		bad("Cmdline", "has a control character at byte %d", i)
	}
	if s.SerialLog != "" {
		if err := checkPath(s.SerialLog); err != nil {
			bad("SerialLog", "%v", err)
		}
	}
	if s.NIC != nil {
		if b := s.NIC.Bridge; b == "" || len(b) > maxIfName || strings.ContainsAny(b, "/ \t\n") {
			bad("NIC.Bridge", "%q must be an interface name of 1-%d characters without '/' or spaces", b, maxIfName)
		}
		if s.NIC.MAC != "" {
			if err := checkMAC(s.NIC.MAC); err != nil {
				bad("NIC.MAC", "%v", err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid domain spec %q: %w", s.Name, errors.Join(errs...))
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// checkPath accepts clean absolute paths: libvirt resolves them on the hypervisor, where a relative
// path means nothing.
func checkPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q must be an absolute path", p)
	}
	if strings.IndexFunc(p, isControl) >= 0 {
		return fmt.Errorf("%q contains a control character", p)
	}
	return nil
}

func checkMAC(s string) error {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 || strings.Count(s, ":") != 5 {
		return fmt.Errorf("%q must be six colon-separated hex bytes, e.g. 52:54:00:12:34:56", s)
	}
	if hw[0]&1 != 0 {
		return fmt.Errorf("%q is a multicast address: the first byte must be even", s)
	}
	return nil
}

// XML validates the spec and renders libvirt domain XML for it. Values are escaped by
// encoding/xml. The guest powers off instead of rebooting or staying crashed, so a guest that
// panics disappears from List rather than looping.
func (s DomainSpec) XML() (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	typ := s.Type
	if typ == "" {
		typ = TypeQEMU
	}
	d := xmlDomain{
		Type:   string(typ),
		Name:   s.Name,
		Memory: xmlMemory{Unit: "MiB", Value: s.MemoryMiB},
		VCPU:   s.VCPUs,
		OS: xmlOS{
			Type:    xmlOSType{Arch: "x86_64", Machine: "pc", Value: "hvm"},
			Kernel:  s.Kernel,
			Initrd:  s.Initrd,
			Cmdline: tcgCmdline(typ, s.Kernel, s.Cmdline),
		},
		Features:   xmlFeatures{ACPI: &struct{}{}},
		Clock:      xmlClock{Offset: "utc"},
		OnPoweroff: "destroy",
		OnReboot:   "destroy",
		OnCrash:    "destroy",
		Devices: xmlDevices{
			Controllers: []xmlController{{Type: "usb", Model: "none"}},
			Memballoon:  xmlModel{Model: "none"},
		},
	}
	if s.SerialLog != "" {
		d.Devices.Serial = xmlSerial{Type: "file", Source: &xmlSource{Path: s.SerialLog, Append: "on"}, Target: xmlTarget{Port: "0"}}
	} else {
		d.Devices.Serial = xmlSerial{Type: "pty", Target: xmlTarget{Port: "0"}}
	}
	if s.NIC != nil {
		nic := xmlInterface{Type: "bridge", Source: xmlBridge{Bridge: s.NIC.Bridge}, Model: xmlModelType{Type: "virtio"}}
		if s.NIC.MAC != "" {
			nic.MAC = &xmlMAC{Address: strings.ToLower(s.NIC.MAC)}
		}
		d.Devices.Interfaces = []xmlInterface{nic}
	}
	out, err := xml.MarshalIndent(d, "", "  ")
	if err != nil {
		return "", fmt.Errorf("render domain %q: %w", s.Name, err)
	}
	return string(out) + "\n", nil
}

// tcgCmdline adds pti=on to the kernel command line of a software-emulated (TCG) guest booted
// from a kernel, unless the command line already sets pti=.
//
// Why: QEMU 7.2's TCG loses writes that go through software-TLB entries cached before dirty
// logging starts, so pages the guest kernel writes constantly (its stacks) can arrive stale on the
// destination and the guest panics right after switch-over. Measured on the testbed (256 MiB
// guest dirtying 64 MiB at 32 MiB/s, 50 ms maximum downtime, bare `virsh migrate --live`): 4 of 5
// guests panicked without it, 0 of 6 with it. pti=on makes the guest switch page tables on every
// kernel entry and exit, which flushes TCG's TLB, so no stale entry survives. KVM guests are
// unaffected and keep their command line.
func tcgCmdline(typ DomainType, kernel, cmdline string) string {
	if typ != TypeQEMU || kernel == "" {
		return cmdline
	}
	for _, f := range strings.Fields(cmdline) {
		if strings.HasPrefix(f, "pti=") || f == "nopti" {
			return cmdline
		}
	}
	return strings.TrimSpace(cmdline + " pti=on")
}

// The subset of libvirt's domain XML schema that DomainSpec uses.
type (
	xmlDomain struct {
		XMLName    xml.Name    `xml:"domain"`
		Type       string      `xml:"type,attr"`
		Name       string      `xml:"name"`
		Memory     xmlMemory   `xml:"memory"`
		VCPU       int         `xml:"vcpu"`
		OS         xmlOS       `xml:"os"`
		Features   xmlFeatures `xml:"features"`
		Clock      xmlClock    `xml:"clock"`
		OnPoweroff string      `xml:"on_poweroff"`
		OnReboot   string      `xml:"on_reboot"`
		OnCrash    string      `xml:"on_crash"`
		Devices    xmlDevices  `xml:"devices"`
	}
	xmlMemory struct {
		Unit  string `xml:"unit,attr"`
		Value int    `xml:",chardata"`
	}
	xmlOS struct {
		Type    xmlOSType `xml:"type"`
		Kernel  string    `xml:"kernel"`
		Initrd  string    `xml:"initrd,omitempty"`
		Cmdline string    `xml:"cmdline,omitempty"`
	}
	xmlOSType struct {
		Arch    string `xml:"arch,attr"`
		Machine string `xml:"machine,attr"`
		Value   string `xml:",chardata"`
	}
	xmlFeatures struct {
		ACPI *struct{} `xml:"acpi"`
	}
	xmlClock struct {
		Offset string `xml:"offset,attr"`
	}
	xmlDevices struct {
		Controllers []xmlController `xml:"controller"`
		Serial      xmlSerial       `xml:"serial"`
		Interfaces  []xmlInterface  `xml:"interface"`
		Memballoon  xmlModel        `xml:"memballoon"`
	}
	xmlController struct {
		Type  string `xml:"type,attr"`
		Model string `xml:"model,attr"`
	}
	xmlSerial struct {
		Type   string     `xml:"type,attr"`
		Source *xmlSource `xml:"source"`
		Target xmlTarget  `xml:"target"`
	}
	xmlSource struct {
		Path   string `xml:"path,attr"`
		Append string `xml:"append,attr,omitempty"`
	}
	xmlTarget struct {
		Port string `xml:"port,attr"`
	}
	xmlInterface struct {
		Type   string       `xml:"type,attr"`
		MAC    *xmlMAC      `xml:"mac"`
		Source xmlBridge    `xml:"source"`
		Model  xmlModelType `xml:"model"`
	}
	xmlMAC struct {
		Address string `xml:"address,attr"`
	}
	xmlBridge struct {
		Bridge string `xml:"bridge,attr"`
	}
	xmlModel struct {
		Model string `xml:"model,attr"`
	}
	xmlModelType struct {
		Type string `xml:"type,attr"`
	}
)

// xmlName extracts <name> from domain XML for error messages; "" when there is none.
func xmlName(doc string) string {
	var d struct {
		Name string `xml:"name"`
	}
	if xml.Unmarshal([]byte(doc), &d) != nil {
		return ""
	}
	return d.Name
}

// quote quotes a domain name for messages.
func quote(name string) string { return strconv.Quote(name) }
