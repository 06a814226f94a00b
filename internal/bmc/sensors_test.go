package bmc

import (
	"testing"

	ipmisensor "github.com/bougou/go-ipmi/pkg/command/sensor"
	"github.com/bougou/go-ipmi/pkg/types"
)

func TestReadingFrom(t *testing.T) {
	tests := []struct {
		name string
		res  ipmisensor.GetSensorReadingResponse
		want reading
	}{
		{"plain", ipmisensor.GetSensorReadingResponse{Reading: 45}, reading{Raw: 45}},
		{"upper critical", ipmisensor.GetSensorReadingResponse{Reading: 91, Above_UNC: true, Above_UCR: true},
			reading{Raw: 91, Crossed: 1<<upperNonCritical | 1<<upperCritical}},
		{"every bit", ipmisensor.GetSensorReadingResponse{Above_UNR: true, Above_UCR: true, Above_UNC: true, Below_LNR: true, Below_LCR: true, Below_LNC: true},
			reading{Crossed: 0x3f}},
		{"lower non-recoverable only", ipmisensor.GetSensorReadingResponse{Below_LNR: true}, reading{Crossed: 1 << lowerNonRecoverable}},
		{"unavailable", ipmisensor.GetSensorReadingResponse{ReadingUnavailable: true}, reading{Unavailable: true}},
		{"not scanned", ipmisensor.GetSensorReadingResponse{SensorScanningDisabled: true}, reading{ScanningDisabled: true}},
	}
	for _, tt := range tests {
		if got := readingFrom(&tt.res); got != tt.want {
			t.Errorf("%s: readingFrom = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestThresholdsFrom(t *testing.T) {
	rec, err := parseFullSDR(sdrCPUTemp) // readable in the SDR: UNC UC UNR
	if err != nil {
		t.Fatal(err)
	}
	all := ipmisensor.GetSensorThresholdsResponse{
		LNC_Readable: true, LCR_Readable: true, LNR_Readable: true, UNC_Readable: true, UCR_Readable: true, UNR_Readable: true,
		LNC_Raw: 1, LCR_Raw: 2, LNR_Raw: 3, UNC_Raw: 80, UCR_Raw: 90, UNR_Raw: 100,
	}
	noUNR := all
	noUNR.UNR_Readable = false
	tests := []struct {
		name string
		res  ipmisensor.GetSensorThresholdsResponse
		want thresholdValues
	}{
		// the BMC claims all six; the SDR says only the upper three are readable
		{"sdr mask wins", all, thresholdValues{Readable: 0x38, Raw: [numLevels]uint8{upperNonCritical: 80, upperCritical: 90, upperNonRecoverable: 100}}},
		// the SDR says readable, the response does not: left out
		{"response mask too", noUNR, thresholdValues{Readable: 0x18, Raw: [numLevels]uint8{upperNonCritical: 80, upperCritical: 90}}},
		{"none", ipmisensor.GetSensorThresholdsResponse{UNC_Raw: 80}, thresholdValues{}},
	}
	for _, tt := range tests {
		if got := thresholdsFrom(rec, &tt.res); got != tt.want {
			t.Errorf("%s: thresholdsFrom = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestWithFactors(t *testing.T) {
	c := conversion{Format: formatTwos, Lin: 0x70, M: 1}
	got := c.withFactors(types.ReadingFactors{M: 3, B: -2, B_Exp: 1, R_Exp: -1})
	want := conversion{Format: formatTwos, Lin: 0x70, M: 3, B: -2, BExp: 1, RExp: -1}
	if got != want {
		t.Fatalf("withFactors = %+v, want %+v", got, want)
	}
	// (3*10 + -2*10^1) * 10^-1 = 1
	if v, err := got.value(10); err != nil || v != 1 {
		t.Errorf("value(10) = %v, %v; want 1", v, err)
	}
	if !got.isNonLinear() || (conversion{Lin: 0x0b}).isNonLinear() {
		t.Error("isNonLinear wrong")
	}
}
