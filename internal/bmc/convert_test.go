package bmc

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestConversionValue(t *testing.T) {
	tests := []struct {
		name string
		c    conversion
		raw  uint8
		want float64
	}{
		// y = L[(M*x + B*10^BExp) * 10^RExp]
		{"identity", conversion{M: 1}, 45, 45},
		{"fan 50 RPM per count", conversion{M: 50}, 120, 6000},           // 50*120
		{"12V: 0.06 V per count", conversion{M: 6, RExp: -2}, 225, 13.5}, // 6*225/100
		{"12V nominal", conversion{M: 6, RExp: -2}, 200, 12},
		{"tenths, no float noise", conversion{M: 3, RExp: -1}, 1, 0.3},                             // 3*0.1, not 0.30000000000000004
		{"12V lower non-recoverable", conversion{M: 6, RExp: -2}, 170, 10.2},                       // 6*170/100                                       // 6*200/100
		{"offset", conversion{M: 1, B: -40}, 0x2a, 2},                                              // 42 - 40
		{"offset with B exp", conversion{M: 2, B: 5, BExp: 1, RExp: -1}, 10, 7},                    // (2*10 + 5*10) / 10
		{"large exponent", conversion{M: 1, RExp: 3}, 2, 2000},                                     // 1*2*1000
		{"small step", conversion{M: 1, RExp: -3}, 7, 0.007},                                       // 1*7/1000
		{"2's complement negative", conversion{Format: formatTwos, M: 1}, 0xf6, -10},               // int8(0xf6) = -10
		{"2's complement positive", conversion{Format: formatTwos, M: 1}, 0x7f, 127},               // int8(0x7f)
		{"1's complement negative", conversion{Format: formatOnes, M: 1}, 0xf5, -10},               // ^0xf5 & 7fh = 0ah
		{"1's complement minus zero", conversion{Format: formatOnes, M: 1}, 0xff, 0},               // -0
		{"negative M", conversion{M: -2, B: 100}, 10, 80},                                          // -2*10 + 100
		{"ln", conversion{M: 1, Lin: 0x01}, 1, 0},                                                  // ln(1)
		{"log10", conversion{M: 10, Lin: 0x02}, 10, 2},                                             // log10(100)
		{"log2", conversion{M: 1, Lin: 0x03}, 8, 3},                                                // log2(8)
		{"e", conversion{M: 1, Lin: 0x04}, 0, 1},                                                   // e^0
		{"exp10", conversion{M: 1, Lin: 0x05}, 2, 100},                                             // 10^2
		{"exp2", conversion{M: 1, Lin: 0x06}, 10, 1024},                                            // 2^10
		{"1/x", conversion{M: 1, Lin: 0x07}, 4, 0.25},                                              // 1/4
		{"sqr", conversion{M: 1, Lin: 0x08}, 12, 144},                                              // 12^2
		{"cube", conversion{M: 1, Lin: 0x09}, 3, 27},                                               // 3^3
		{"sqrt", conversion{M: 1, Lin: 0x0a}, 81, 9},                                               // sqrt(81)
		{"cube root", conversion{M: 1, Lin: 0x0b}, 64, 4},                                          // cbrt(64)
		{"non-linear: factors given per reading, no L", conversion{M: 3, B: 1, Lin: 0x70}, 10, 31}, // 3*10 + 1
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.value(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("value(%#02x) = %v, want %v", tt.raw, got, tt.want)
			}
		})
	}
}

// A conversion that would give NaN or ±Inf, or cannot be done, is an error, never a value.
func TestConversionValueErrors(t *testing.T) {
	tests := []struct {
		name string
		c    conversion
		raw  uint8
		want string
	}{
		{"not analog", conversion{Format: formatNotAnalog, M: 1}, 1, "no numeric reading"},
		{"ln of 0 is -Inf", conversion{M: 1, Lin: 0x01}, 0, "no value"},
		{"1/0 is +Inf", conversion{M: 1, Lin: 0x07}, 0, "no value"},
		{"sqrt of a negative is NaN", conversion{M: -1, Lin: 0x0a}, 4, "no value"},
		{"log10 of a negative is NaN", conversion{M: 1, Format: formatTwos, Lin: 0x02}, 0xff, "no value"},
		{"10^x overflows", conversion{M: 1, RExp: 7, Lin: 0x05}, 255, "no value"},
		{"reserved linearisation", conversion{M: 1, Lin: 0x0c}, 1, "unknown linearisation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.value(tt.raw)
			if err == nil {
				t.Fatalf("value(%#02x) = %v, want an error", tt.raw, got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	const (
		lnc = 1 << lowerNonCritical
		lc  = 1 << lowerCritical
		lnr = 1 << lowerNonRecoverable
		unc = 1 << upperNonCritical
		uc  = 1 << upperCritical
		unr = 1 << upperNonRecoverable
	)
	tests := []struct {
		name string
		rd   reading
		want Status
	}{
		{"nothing crossed", reading{Raw: 45}, StatusOK},
		{"upper non-critical", reading{Crossed: unc}, StatusUpperNonCritical},
		// a BMC sets every threshold the reading is beyond: the most severe wins
		{"upper critical", reading{Crossed: unc | uc}, StatusUpperCritical},
		{"upper non-recoverable", reading{Crossed: unc | uc | unr}, StatusUpperNonRecoverable},
		{"critical alone", reading{Crossed: uc}, StatusUpperCritical},
		{"lower non-critical", reading{Crossed: lnc}, StatusLowerNonCritical},
		{"lower critical", reading{Crossed: lnc | lc}, StatusLowerCritical},
		{"lower non-recoverable", reading{Crossed: lnc | lc | lnr}, StatusLowerNonRecoverable},
		{"severity beats side", reading{Crossed: unc | lc}, StatusLowerCritical},
		{"unavailable hides stale bits", reading{Unavailable: true, Crossed: uc}, StatusUnavailable},
		{"scanning disabled", reading{ScanningDisabled: true}, StatusUnavailable},
	}
	for _, tt := range tests {
		if got := classify(tt.rd); got != tt.want {
			t.Errorf("%s: classify(%+v) = %s, want %s", tt.name, tt.rd, got, tt.want)
		}
	}
}

func TestSeverity(t *testing.T) {
	for s, want := range map[Status]Severity{
		StatusOK:                  SeverityOK,
		StatusLowerNonCritical:    SeverityNonCritical,
		StatusUpperNonCritical:    SeverityNonCritical,
		StatusLowerCritical:       SeverityCritical,
		StatusUpperCritical:       SeverityCritical,
		StatusLowerNonRecoverable: SeverityNonRecoverable,
		StatusUpperNonRecoverable: SeverityNonRecoverable,
		StatusUnavailable:         SeverityUnknown,
		Status("bogus"):           SeverityUnknown,
	} {
		if got := s.Severity(); got != want {
			t.Errorf("%s.Severity() = %d, want %d", s, got, want)
		}
	}
	if !(SeverityUnknown < SeverityOK && SeverityOK < SeverityNonCritical && SeverityNonCritical < SeverityCritical && SeverityCritical < SeverityNonRecoverable) {
		t.Error("severities are not ordered")
	}
}

func TestUnitsNormalize(t *testing.T) {
	tests := []struct {
		name string
		u    units
		in   float64
		unit string
		out  float64
	}{
		{"celsius", units{Base: 1}, 45, "°C", 45},
		{"fahrenheit to celsius", units{Base: 2}, 212, "°C", 100},    // (212-32)*5/9
		{"kelvin to celsius", units{Base: 3}, 300, "°C", 26.85},      // 300-273.15, rounded off float noise
		{"volts", units{Base: 4}, 12.1, "V", 12.1},                   //
		{"watts", units{Base: 6}, 300, "W", 300},                     //
		{"rpm", units{Base: 18}, 6000, "RPM", 6000},                  //
		{"milliseconds to seconds", units{Base: 21}, 250, "s", 0.25}, // 250/1000
		{"minutes to seconds", units{Base: 23}, 2, "s", 120},         // 2*60
		{"percent", units{Percent: true}, 40, "%", 40},
		{"percent of a unit", units{Percent: true, Base: 4}, 3, "% V", 3},
		{"rate", units{Base: 42, Rate: 3}, 7, "cycles/s", 7},
		{"modifier divides", units{Base: 6, ModRel: 1, Modifier: 24}, 5, "W/h", 5},
		{"modifier multiplies", units{Base: 6, ModRel: 2, Modifier: 24}, 5, "W*h", 5},
		{"compound temperature is not converted", units{Base: 2, Rate: 4}, 10, "°F/min", 10},
		{"unspecified", units{}, 3, "", 3},
		{"unknown code", units{Base: 200}, 3, "unit 200", 3},
	}
	for _, tt := range tests {
		unit, conv := tt.u.normalize()
		if got := conv(tt.in); unit != tt.unit || got != tt.out {
			t.Errorf("%s: %v normalizes to %q, %v -> %v; want %q, %v", tt.name, tt.u, unit, tt.in, got, tt.unit, tt.out)
		}
	}
}

func TestSensorTypeName(t *testing.T) {
	for code, want := range map[uint8]string{
		0x01: "temperature", 0x02: "voltage", 0x03: "current", 0x04: "fan",
		0x0b: "other units-based", 0x2d: "type 0x2d", 0xc1: "oem 0xc1",
	} {
		if got := sensorTypeName(code); got != want {
			t.Errorf("sensorTypeName(%#02x) = %q, want %q", code, got, want)
		}
	}
}

func ptr(v float64) *float64 { return &v }

func TestSensorFrom(t *testing.T) {
	cpu, err := parseFullSDR(sdrCPUTemp)
	if err != nil {
		t.Fatal(err)
	}
	volts, err := parseFullSDR(sdr12V)
	if err != nil {
		t.Fatal(err)
	}
	fahrenheit := cpu
	fahrenheit.Units.Base = 2
	upper := thresholdValues{Readable: cpu.Readable, Raw: cpu.Fixed}
	failing := func(uint8) (float64, error) { return 0, errNotAnalog }

	tests := []struct {
		name string
		rec  sdrFull
		rd   reading
		th   thresholdValues
		conv converter
		want Sensor
	}{
		{
			name: "cpu at 91 is upper critical",
			rec:  cpu, rd: reading{Raw: 91, Crossed: 1<<upperNonCritical | 1<<upperCritical}, th: upper,
			want: Sensor{Name: "CPU Temp", Number: 1, Type: "temperature", Unit: "°C", Value: 91, Available: true,
				Status: StatusUpperCritical, Thresholds: Thresholds{UpperNonCritical: ptr(80), UpperCritical: ptr(90), UpperNonRecoverable: ptr(100)}},
		},
		{
			name: "12V with all six thresholds",
			rec:  volts, rd: reading{Raw: 200}, th: thresholdValues{Readable: 0x3f, Raw: volts.Fixed},
			want: Sensor{Name: "12V", Number: 4, Type: "voltage", Unit: "V", Value: 12, Available: true, Status: StatusOK,
				Thresholds: Thresholds{LowerNonRecoverable: ptr(10.2), LowerCritical: ptr(10.8), LowerNonCritical: ptr(11.4),
					UpperNonCritical: ptr(12.6), UpperCritical: ptr(13.2), UpperNonRecoverable: ptr(13.8)}},
		},
		{
			name: "only readable thresholds are reported",
			rec:  cpu, rd: reading{Raw: 45}, th: thresholdValues{Readable: 1 << upperCritical, Raw: cpu.Fixed},
			want: Sensor{Name: "CPU Temp", Number: 1, Type: "temperature", Unit: "°C", Value: 45, Available: true, Status: StatusOK,
				Thresholds: Thresholds{UpperCritical: ptr(90)}},
		},
		{
			name: "fahrenheit sensor reports celsius, thresholds too",
			rec:  fahrenheit, rd: reading{Raw: 212}, th: thresholdValues{Readable: 1 << upperCritical, Raw: [numLevels]uint8{upperCritical: 122}},
			want: Sensor{Name: "CPU Temp", Number: 1, Type: "temperature", Unit: "°C", Value: 100, Available: true, Status: StatusOK,
				Thresholds: Thresholds{UpperCritical: ptr(50)}},
		},
		{
			name: "reading unavailable: no value, status unavailable, thresholds kept",
			rec:  cpu, rd: reading{Raw: 0, Unavailable: true}, th: upper,
			want: Sensor{Name: "CPU Temp", Number: 1, Type: "temperature", Unit: "°C", Status: StatusUnavailable,
				Reason:     "the BMC reports the reading unavailable",
				Thresholds: Thresholds{UpperNonCritical: ptr(80), UpperCritical: ptr(90), UpperNonRecoverable: ptr(100)}},
		},
		{
			name: "scanning disabled",
			rec:  cpu, rd: reading{Raw: 45, ScanningDisabled: true},
			want: Sensor{Name: "CPU Temp", Number: 1, Type: "temperature", Unit: "°C", Status: StatusUnavailable,
				Reason: "sensor scanning is disabled on the BMC"},
		},
		{
			name: "conversion fails: no value, the BMC's verdict stays",
			rec:  cpu, rd: reading{Raw: 45, Crossed: 1 << upperNonCritical}, th: upper, conv: failing,
			want: Sensor{Name: "CPU Temp", Number: 1, Type: "temperature", Unit: "°C", Status: StatusUpperNonCritical,
				Reason: "sensor has no numeric reading"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conv := tt.conv
			if conv == nil {
				conv = tt.rec.Conv.value
			}
			got := sensorFrom(tt.rec, tt.rd, tt.th, conv)
			if diff := sensorDiff(got, tt.want); diff != "" {
				t.Errorf("sensorFrom: %s", diff)
			}
			if got.Available && (math.IsNaN(got.Value) || math.IsInf(got.Value, 0)) {
				t.Errorf("available value %v is not finite", got.Value)
			}
		})
	}
}

// sensorDiff describes how two Sensors differ, comparing thresholds by value.
func sensorDiff(got, want Sensor) string {
	var d []string
	f := func(p *float64) string {
		if p == nil {
			return "none"
		}
		return fmt.Sprint(*p)
	}
	gt, wt := got.Thresholds, want.Thresholds
	for _, c := range []struct {
		name string
		g, w *float64
	}{
		{"LNR", gt.LowerNonRecoverable, wt.LowerNonRecoverable}, {"LC", gt.LowerCritical, wt.LowerCritical},
		{"LNC", gt.LowerNonCritical, wt.LowerNonCritical}, {"UNC", gt.UpperNonCritical, wt.UpperNonCritical},
		{"UC", gt.UpperCritical, wt.UpperCritical}, {"UNR", gt.UpperNonRecoverable, wt.UpperNonRecoverable},
	} {
		if (c.g == nil) != (c.w == nil) || (c.g != nil && *c.g != *c.w) {
			d = append(d, fmt.Sprintf("threshold %s = %s, want %s", c.name, f(c.g), f(c.w)))
		}
	}
	got.Thresholds, want.Thresholds = Thresholds{}, Thresholds{}
	if got != want {
		d = append(d, fmt.Sprintf("got %+v, want %+v", got, want))
	}
	return strings.Join(d, "; ")
}
