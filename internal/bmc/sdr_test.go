package bmc

import (
	"errors"
	"testing"
)

// Full Sensor Records as the testbed BMC returns them (scripts/testbed.d/ipmi.sh writes them into
// ipmi_sim; record IDs are the BMC's business and left 0 here).
var (
	sdrCPUTemp = []byte{
		0x00, 0x00, 0x51, 0x01, 0x33, // record 0, SDR 51h, full sensor, 51 bytes follow
		0x20, 0x00, 0x01, 0x03, 0x01, 0x67, 0x48, 0x01, 0x01, // owner 20h LUN 0, sensor 1, processor, caps 48h, temperature, threshold
		0x80, 0x0a, 0x80, 0x7a, // assertion/deassertion masks; upper comparisons returned (7ah bits 6:4)
		0x38, 0x38, // readable, settable: UNC UC UNR
		0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // unsigned, degrees C, linear, M=1 B=0, exponents 0
		0x01, 0x2d, 0x00, 0x00, 0xff, 0x00, // nominal 45
		0x64, 0x5a, 0x50, 0x00, 0x00, 0x00, // UNR 100, UC 90, UNC 80, LNR LC LNC 0
		0x00, 0x00, 0x00, 0x00, 0x00,
		0xc8, 'C', 'P', 'U', ' ', 'T', 'e', 'm', 'p', // 8-bit ASCII, 8 bytes
	}
	sdrFan = []byte{
		0x00, 0x00, 0x51, 0x01, 0x2f,
		0x20, 0x00, 0x03, 0x1d, 0x01, 0x67, 0x48, 0x04, 0x01,
		0x15, 0x70, 0x15, 0x00, // lower comparisons returned (70h bits 6:4)
		0x07, 0x07, // readable, settable: LNC LC LNR
		0x00, 0x12, 0x00, 0x00, 0x32, 0x00, 0x00, 0x00, 0x00, 0x00, // RPM, M=50
		0x01, 0x78, 0x00, 0x00, 0xff, 0x00,
		0x00, 0x00, 0x00, 0x0a, 0x14, 0x1e, // LNR 10 (500 RPM), LC 20, LNC 30
		0x00, 0x00, 0x00, 0x00, 0x00,
		0xc4, 'F', 'A', 'N', '1',
	}
	sdr12V = []byte{
		0x00, 0x00, 0x51, 0x01, 0x2e,
		0x20, 0x00, 0x04, 0x07, 0x01, 0x67, 0x48, 0x02, 0x01,
		0x95, 0x7a, 0x95, 0x7a,
		0x3f, 0x3f,
		0x00, 0x04, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0xe0, // volts, M=6, R exp = -2 (e0h)
		0x01, 0xc8, 0x00, 0x00, 0xff, 0x00,
		0xe6, 0xdc, 0xd2, 0xaa, 0xb4, 0xbe,
		0x00, 0x00, 0x00, 0x00, 0x00,
		0xc3, '1', '2', 'V',
	}
	// A vendor-style inlet sensor: 2's complement readings, B = -40 with B exp 0, fixed thresholds
	// (capabilities 4ch: access 11b), thresholds readable (1bh: LNC LC UNC UC) but none settable,
	// owned by a satellite controller at 2ch on LUN 1, name padded with spaces.
	sdrInlet = []byte{
		0x07, 0x01, 0x51, 0x01, 0x36, // record 0107h
		0x2c, 0x01, 0x11, 0x37, 0x01, 0x7f, 0x4c, 0x01, 0x01,
		0x00, 0x30, 0x00, 0x30, // LC LNC returned (30h), UC UNC returned (30h)
		0x1b, 0x00, // readable LNC LC UNC UC; settable none
		0x80, 0x01, 0x00, 0x00, 0x01, 0x00, 0xd8, 0xc0, 0x00, 0x00, // 2's complement, degrees C, M=1, B=-40 (d8h + MS bits 11b)
		0x00, 0x00, 0x00, 0x00, 0x7f, 0x80,
		0x00, 0x55, 0x50, 0x00, 0x28, 0x2a, // UNR -, UC 85-40, UNC 80-40, LNR -, LC 40-40, LNC 42-40
		0x00, 0x00, 0x00, 0x00, 0x00,
		0xcb, 'I', 'n', 'l', 'e', 't', ' ', 'T', 'e', 'm', 'p', ' ',
	}
)

func TestParseFullSDR(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want sdrFull
	}{
		{"cpu", sdrCPUTemp, sdrFull{
			Owner: 0x20, Number: 1, Entity: 0x03, Type: 0x01, EventType: 0x01, Access: thresholdsSettable,
			Returned: 0x38, Readable: 0x38, // bits 3-5: UNC, UC, UNR
			Units: units{Base: 1},
			Conv:  conversion{Format: formatUnsigned, M: 1},
			Fixed: [numLevels]uint8{upperNonCritical: 80, upperCritical: 90, upperNonRecoverable: 100},
			Name:  "CPU Temp",
		}},
		{"fan", sdrFan, sdrFull{
			Owner: 0x20, Number: 3, Entity: 0x1d, Type: 0x04, EventType: 0x01, Access: thresholdsSettable,
			Returned: 0x07, Readable: 0x07, // bits 0-2: LNC, LC, LNR
			Units: units{Base: 18},
			Conv:  conversion{M: 50},
			Fixed: [numLevels]uint8{lowerNonCritical: 30, lowerCritical: 20, lowerNonRecoverable: 10},
			Name:  "FAN1",
		}},
		{"12v", sdr12V, sdrFull{
			Owner: 0x20, Number: 4, Entity: 0x07, Type: 0x02, EventType: 0x01, Access: thresholdsSettable,
			Returned: 0x3f, Readable: 0x3f,
			Units: units{Base: 4},
			Conv:  conversion{M: 6, RExp: -2},
			Fixed: [numLevels]uint8{190, 180, 170, 210, 220, 230},
			Name:  "12V",
		}},
		{"vendor inlet", sdrInlet, sdrFull{
			RecordID: 0x0107, Owner: 0x2c, LUN: 1, Number: 0x11, Entity: 0x37, Type: 0x01, EventType: 0x01,
			Access:   thresholdsFixed,
			Returned: 0x1b, // LNC LC (lower 3h) | UNC UC (upper 3h << 3)
			Readable: 0x1b, // from byte 19 only: byte 20 (settable, 00h) must not leak in
			Units:    units{Base: 1},
			Conv:     conversion{Format: formatTwos, M: 1, B: -40},
			Fixed:    [numLevels]uint8{lowerNonCritical: 0x2a, lowerCritical: 0x28, upperNonCritical: 0x50, upperCritical: 0x55},
			Name:     "Inlet Temp",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFullSDR(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("parseFullSDR =\n %+v\nwant\n %+v", got, tt.want)
			}
			if !got.isThreshold() {
				t.Error("isThreshold = false, want true")
			}
		})
	}
}

func TestParseFullSDRRejects(t *testing.T) {
	compact := append([]byte{}, sdrCPUTemp...)
	compact[3] = 0x02
	tests := []struct {
		name  string
		data  []byte
		short bool
	}{
		{"empty", nil, true},
		{"header only", sdrCPUTemp[:5], true},
		{"body cut before the ID string", sdrCPUTemp[:47], true},
		{"compact record", compact, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFullSDR(tt.data)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, errShortSDR) != tt.short {
				t.Errorf("errors.Is(err, errShortSDR) = %v, want %v (%v)", !tt.short, tt.short, err)
			}
		})
	}
}

func TestParseFullSDRKinds(t *testing.T) {
	discrete := append([]byte{}, sdrCPUTemp...)
	discrete[13] = 0x6f // sensor-specific event/reading type
	notAnalog := append([]byte{}, sdrCPUTemp...)
	notAnalog[20] = 0xc0 // analog data format 11b
	noName := append([]byte{}, sdrCPUTemp[:47]...)
	noName = append(noName, 0xc0) // zero-length ID string
	for _, tt := range []struct {
		name      string
		data      []byte
		threshold bool
		id        string
	}{
		{"threshold", sdrCPUTemp, true, "CPU Temp"},
		{"discrete", discrete, false, "CPU Temp"},
		{"not analog", notAnalog, false, "CPU Temp"},
		{"no name", noName, true, "sensor 0x01"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseFullSDR(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if r.isThreshold() != tt.threshold || r.Name != tt.id {
				t.Errorf("isThreshold %v name %q, want %v %q", r.isThreshold(), r.Name, tt.threshold, tt.id)
			}
		})
	}
}

func TestIDString(t *testing.T) {
	for _, tt := range []struct {
		name    string
		typeLen byte
		b       []byte
		want    string
	}{
		{"ascii", 0xc4, []byte("FAN1"), "FAN1"},
		{"length shorter than bytes", 0xc3, []byte("FAN1"), "FAN"},
		{"length longer than bytes", 0xc8, []byte("FAN1"), "FAN1"},
		{"nul terminated, padded", 0xc6, []byte{'P', 'S', '1', 0, 'x', 'y'}, "PS1"},
		{"trailing spaces", 0xc6, []byte("12V   "), "12V"},
		{"latin-1", 0xc4, []byte{'T', 0xb0, 'C', ' '}, "T°C"},
		{"6-bit packed ascii is not decoded", 0x83, []byte{0x29, 0xdc, 0xa6}, ""},
		{"unicode is not decoded", 0x02, []byte{0x00, 0x41}, ""},
	} {
		if got := idString(tt.typeLen, tt.b); got != tt.want {
			t.Errorf("%s: idString(%#02x, %q) = %q, want %q", tt.name, tt.typeLen, tt.b, got, tt.want)
		}
	}
}

func TestSignExtend(t *testing.T) {
	for _, tt := range []struct {
		v    uint
		bits uint
		want int
	}{
		{0x000, 10, 0},
		{0x1ff, 10, 511},  // largest positive 10-bit
		{0x200, 10, -512}, // smallest negative
		{0x3d8, 10, -40},  // B = -40 as the SDR stores it: d8h with MS bits 11b
		{0x3ff, 10, -1},
		{0x7, 4, 7},
		{0xe, 4, -2}, // R exp -2
		{0x8, 4, -8},
		{0x1e, 4, -2}, // bits above the width are ignored
	} {
		if got := signExtend(tt.v, tt.bits); got != tt.want {
			t.Errorf("signExtend(%#x, %d) = %d, want %d", tt.v, tt.bits, got, tt.want)
		}
	}
}
