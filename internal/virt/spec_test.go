package virt

import (
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", t.Name(), path, got, want)
	}
}

func validSpec() DomainSpec {
	return DomainSpec{
		Name:      "vn1",
		MemoryMiB: 256,
		VCPUs:     1,
		Type:      TypeQEMU,
		Kernel:    "/srv/guest/vmlinuz",
		Initrd:    "/srv/guest/initramfs.cpio.gz",
		Cmdline:   "console=ttyS0 quiet panic=-1 dirty_mb=64 dirty_rate=16",
		SerialLog: "/var/log/drover/vn1.serial",
	}
}

func TestDomainSpecXMLGolden(t *testing.T) {
	tests := []struct {
		golden string
		spec   func() DomainSpec
	}{
		{"domain-minimal.xml", func() DomainSpec {
			// no initrd, no cmdline, no serial file: a pty console, omitted elements
			return DomainSpec{Name: "tiny", MemoryMiB: 64, VCPUs: 1, Kernel: "/boot/vmlinuz"}
		}},
		{"domain-serial.xml", validSpec},
		{"domain-kvm-nic.xml", func() DomainSpec {
			s := validSpec()
			s.Type = TypeKVM
			s.VCPUs = 4
			s.MemoryMiB = 4096
			s.NIC = &NIC{Bridge: "br0", MAC: "52:54:00:AB:cd:01"} // rendered lower-case
			return s
		}},
		{"domain-escaped.xml", func() DomainSpec {
			// characters that are markup in XML must come out as entities, not as elements
			s := validSpec()
			s.Cmdline = `console=ttyS0 msg="a<b && c>d" x='y'`
			s.SerialLog = "/tmp/a&b/<serial>.log"
			return s
		}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			spec := tt.spec()
			got, err := spec.XML()
			if err != nil {
				t.Fatalf("XML: %v", err)
			}
			golden(t, tt.golden, got)
			// whatever the golden file says, the document must parse back to the same values
			var back struct {
				Name string `xml:"name"`
				OS   struct {
					Cmdline string `xml:"cmdline"`
				} `xml:"os"`
			}
			if err := xml.Unmarshal([]byte(got), &back); err != nil {
				t.Fatalf("rendered XML does not parse: %v", err)
			}
			wantCmdline := tcgCmdline(spec.Type, spec.Kernel, spec.Cmdline)
			if spec.Type == "" {
				wantCmdline = tcgCmdline(TypeQEMU, spec.Kernel, spec.Cmdline)
			}
			if back.Name != spec.Name || back.OS.Cmdline != wantCmdline {
				t.Errorf("round trip: name %q cmdline %q, want %q %q", back.Name, back.OS.Cmdline, spec.Name, wantCmdline)
			}
		})
	}
}

func TestDomainSpecValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*DomainSpec)
		fields []string // fields the error must name; none means valid
	}{
		{"valid", func(*DomainSpec) {}, nil},
		{"empty type means qemu", func(s *DomainSpec) { s.Type = "" }, nil},
		{"kvm", func(s *DomainSpec) { s.Type = TypeKVM }, nil},
		{"no initrd, cmdline or serial", func(s *DomainSpec) { s.Initrd, s.Cmdline, s.SerialLog = "", "", "" }, nil},
		{"nic without mac", func(s *DomainSpec) { s.NIC = &NIC{Bridge: "br0"} }, nil},
		{"64-character name", func(s *DomainSpec) { s.Name = strings.Repeat("a", 64) }, nil},

		{"empty name", func(s *DomainSpec) { s.Name = "" }, []string{"Name"}},
		{"65-character name", func(s *DomainSpec) { s.Name = strings.Repeat("a", 65) }, []string{"Name"}},
		{"slash in name", func(s *DomainSpec) { s.Name = "a/b" }, []string{"Name"}},
		{"name starts with dash", func(s *DomainSpec) { s.Name = "-vm" }, []string{"Name"}},
		{"zero memory", func(s *DomainSpec) { s.MemoryMiB = 0 }, []string{"MemoryMiB"}},
		// 4 TiB = 4<<20 MiB is the limit; one more is refused
		{"memory over 4 TiB", func(s *DomainSpec) { s.MemoryMiB = 4<<20 + 1 }, []string{"MemoryMiB"}},
		{"zero vcpus", func(s *DomainSpec) { s.VCPUs = 0 }, []string{"VCPUs"}},
		{"257 vcpus", func(s *DomainSpec) { s.VCPUs = 257 }, []string{"VCPUs"}},
		{"unknown type", func(s *DomainSpec) { s.Type = "xen" }, []string{"Type"}},
		{"no kernel", func(s *DomainSpec) { s.Kernel = "" }, []string{"Kernel"}},
		{"relative kernel", func(s *DomainSpec) { s.Kernel = "out/vmlinuz" }, []string{"Kernel"}},
		{"relative initrd", func(s *DomainSpec) { s.Initrd = "initrd.gz" }, []string{"Initrd"}},
		{"newline in cmdline", func(s *DomainSpec) { s.Cmdline = "a\nb" }, []string{"Cmdline"}},
		// 2047 bytes fit in the kernel's 2048-byte buffer with its NUL; 2048 do not
		{"cmdline too long", func(s *DomainSpec) { s.Cmdline = strings.Repeat("x", 2048) }, []string{"Cmdline"}},
		{"relative serial log", func(s *DomainSpec) { s.SerialLog = "vn1.log" }, []string{"SerialLog"}},
		{"nic without bridge", func(s *DomainSpec) { s.NIC = &NIC{} }, []string{"NIC.Bridge"}},
		{"bridge name too long", func(s *DomainSpec) { s.NIC = &NIC{Bridge: "abcdefghijklmnop"} }, []string{"NIC.Bridge"}},
		{"bad mac", func(s *DomainSpec) { s.NIC = &NIC{Bridge: "br0", MAC: "52:54:00:12:34"} }, []string{"NIC.MAC"}},
		{"dashed mac", func(s *DomainSpec) { s.NIC = &NIC{Bridge: "br0", MAC: "52-54-00-12-34-56"} }, []string{"NIC.MAC"}},
		// 0x01 has the group bit set: a multicast address cannot be a NIC's own
		{"multicast mac", func(s *DomainSpec) { s.NIC = &NIC{Bridge: "br0", MAC: "01:00:5e:00:00:01"} }, []string{"NIC.MAC"}},
		{"every problem reported", func(s *DomainSpec) { *s = DomainSpec{} }, []string{"Name", "MemoryMiB", "VCPUs", "Kernel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.modify(&s)
			err := s.Validate()
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %v", tt.fields)
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f+": ") {
					t.Errorf("Validate() = %q, want it to name %s", err, f)
				}
			}
			if _, xerr := s.XML(); xerr == nil {
				t.Errorf("XML() rendered an invalid spec")
			}
		})
	}
}

func TestTCGCmdline(t *testing.T) {
	for _, tc := range []struct {
		typ                   DomainType
		kernel, cmdline, want string
	}{
		{TypeQEMU, "/k", "console=ttyS0", "console=ttyS0 pti=on"}, // TCG: flush the soft TLB (see tcgCmdline)
		{TypeQEMU, "/k", "", "pti=on"},
		{TypeQEMU, "/k", "console=ttyS0 pti=off", "console=ttyS0 pti=off"}, // an explicit choice wins
		{TypeQEMU, "/k", "nopti quiet", "nopti quiet"},
		{TypeKVM, "/k", "console=ttyS0", "console=ttyS0"}, // hardware virtualisation: untouched
		{TypeQEMU, "", "x", "x"},                          // no direct kernel boot: no command line to change
	} {
		if got := tcgCmdline(tc.typ, tc.kernel, tc.cmdline); got != tc.want {
			t.Errorf("tcgCmdline(%s, %q, %q) = %q, want %q", tc.typ, tc.kernel, tc.cmdline, got, tc.want)
		}
	}
}
