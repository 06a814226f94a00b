package health

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/drover-hpc/drover/internal/bmc"
)

// th builds a Threshold from the four bounds in their order (critical low, warning low,
// warning high, critical high); NaN stands for a missing bound.
func th(sensor string, critLow, warnLow, warnHigh, critHigh float64) Threshold {
	p := func(v float64) *float64 {
		if math.IsNaN(v) {
			return nil
		}
		return new(v)
	}
	return Threshold{
		Sensor:   sensor,
		Warning:  Limits{Low: p(warnLow), High: p(warnHigh)},
		Critical: Limits{Low: p(critLow), High: p(critHigh)},
	}
}

var none = math.NaN()

func withHysteresis(t Threshold, h float64) Threshold {
	t.Hysteresis = new(h)
	return t
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		th   Threshold
		want string // substring of the error; empty: valid
	}{
		{"all four ordered", th("T", 5, 10, 80, 90), ""},
		{"warning bands may be empty", th("T", 10, 10, 80, 80), ""},
		{"critical only", th("T", 10, none, none, 85), ""},
		{"high side only", th("T", none, none, 80, 90), ""},
		{"no bounds at all", th("T", none, none, none, none), ""},
		{"no name", th(" ", 5, 10, 80, 90), "no sensor name"},
		{"critical low above warning low", th("T", 12, 10, 80, 90), "critical low 12 is not below warning low 10"},
		{"warning high above critical high", th("T", 5, 10, 95, 90), "warning high 95 is not below critical high 90"},
		{"warning low equal to warning high", th("T", 5, 50, 50, 90), "warning low 50 is not below warning high 50"},
		// lower and upper bounds compare even with the bounds between them missing
		{"critical low above critical high", th("T", 90, none, none, 10), "critical low 90 is not below critical high 10"},
		{"infinite bound", th("T", none, none, none, math.Inf(1)), "critical high +Inf is not a finite number"},
		{"negative hysteresis", withHysteresis(th("T", 5, 10, 80, 90), -1), "hysteresis -1"},
		{"NaN hysteresis", withHysteresis(th("T", 5, 10, 80, 90), math.NaN()), "hysteresis NaN"},
		// ok band 10..80 is 70 wide: a margin of 35 would make every reading a warning
		{"hysteresis half the ok band", withHysteresis(th("T", 5, 10, 80, 90), 35), "not less than half the ok band 10..80"},
		{"hysteresis just under half", withHysteresis(th("T", 5, 10, 80, 90), 34.9), ""},
		{"hysteresis on a one-sided sensor", withHysteresis(th("T", none, none, 80, 90), 50), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.th.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want an error with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %q, want it to contain %q", err, tt.want)
			case err != nil && !strings.HasPrefix(err.Error(), `sensor "`):
				t.Fatalf("Validate() = %q, want it to name the sensor", err)
			}
		})
	}
}

func TestMargin(t *testing.T) {
	tests := []struct {
		name string
		th   Threshold
		want float64
	}{
		// warning band 80..90 → 0.25·10 = 2.5; no ok band
		{"cpu high side", th("T", none, none, 80, 90), 2.5},
		// the classic two-number line: ok band 10..85 → 0.05·75 = 3.75
		{"classic critical only", th("T", 10, none, none, 85), 3.75},
		// warning bands 0.6 → 0.15, ok band 11.4..12.6 → 0.05·1.2 = 0.06: the smaller wins
		{"12 V rail", th("T", 10.8, 11.4, 12.6, 13.2), 0.06},
		// warning bands 5 and 10 → 1.25 and 2.5; ok band 10..80 → 3.5
		{"temperature both sides", th("T", 5, 10, 80, 90), 1.25},
		// a lone bound: 0.02·|−300| = 6
		{"single bound", th("T", -300, none, none, none), 6},
		// coinciding warning and critical: no warning band, no ok band → single-bound rule
		{"coinciding bounds", th("T", none, none, 50, 50), 1},
		{"no bounds", th("T", none, none, none, none), 0},
		{"explicit", withHysteresis(th("T", 5, 10, 80, 90), 0.5), 0.5},
		{"explicit zero", withHysteresis(th("T", 5, 10, 80, 90), 0), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.th.Margin(); math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("Margin() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFromBMC(t *testing.T) {
	f := func(v float64) *float64 { return new(v) }
	tests := []struct {
		name string
		bt   bmc.Thresholds
		want Threshold
		err  string
	}{
		{
			name: "non-critical is warning, critical is critical",
			bt:   bmc.Thresholds{LowerCritical: f(5), LowerNonCritical: f(10), UpperNonCritical: f(80), UpperCritical: f(90), UpperNonRecoverable: f(95)},
			want: th("CPU Temp", 5, 10, 80, 90),
		},
		{
			name: "non-recoverable stands in for a missing critical",
			bt:   bmc.Thresholds{LowerNonRecoverable: f(2), UpperNonCritical: f(80), UpperNonRecoverable: f(95)},
			want: th("CPU Temp", 2, none, 80, 95),
		},
		{name: "none", bt: bmc.Thresholds{}, want: th("CPU Temp", none, none, none, none)},
		{
			name: "inconsistent",
			bt:   bmc.Thresholds{UpperNonCritical: f(90), UpperCritical: f(80)},
			err:  `bmc thresholds: sensor "CPU Temp": warning high 90 is not below critical high 80 (want critical low <= warning low < warning high <= critical high)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromBMC("CPU Temp", tt.bt)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("FromBMC() error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Source = "bmc"
			if diff := diffThreshold(got, tt.want); diff != "" {
				t.Errorf("FromBMC() %s", diff)
			}
		})
	}
	// the result must not alias the BMC's values
	v := 80.0
	got, _ := FromBMC("T", bmc.Thresholds{UpperCritical: &v})
	v = 1
	if *got.Critical.High != 80 {
		t.Errorf("FromBMC aliases its input: critical high became %v", *got.Critical.High)
	}
}

func TestTable(t *testing.T) {
	a := th("CPU Temp", none, none, 80, 90)
	b := th("Fan 1", 300, 500, none, none)
	tab, err := NewTable([]Threshold{a, b})
	if err != nil {
		t.Fatal(err)
	}
	// names match ignoring case and runs of white space
	for _, name := range []string{"CPU Temp", "cpu temp", " CPU   Temp "} {
		if got, ok := tab.Lookup(name); !ok || got.Sensor != "CPU Temp" {
			t.Errorf("Lookup(%q) = %v, %v; want CPU Temp", name, got.Sensor, ok)
		}
	}
	if _, ok := tab.Lookup("CPU Temp 2"); ok {
		t.Error("Lookup(CPU Temp 2) found something")
	}

	// For: config first, the BMC's thresholds otherwise
	bmcTh := bmc.Thresholds{UpperNonCritical: new(70.0), UpperCritical: new(75.0)}
	got, err := tab.For(bmc.Sensor{Name: "CPU TEMP", Thresholds: bmcTh})
	if err != nil || got.Warning.High == nil || *got.Warning.High != 80 || got.Sensor != "CPU TEMP" {
		t.Errorf("For(configured sensor) = %+v, %v; want the configured 80/90 under the BMC's name", got, err)
	}
	got, err = tab.For(bmc.Sensor{Name: "Inlet Temp", Thresholds: bmcTh})
	if err != nil || got.Source != "bmc" || *got.Critical.High != 75 {
		t.Errorf("For(unconfigured sensor) = %+v, %v; want the BMC's 70/75", got, err)
	}

	// Unmatched lists configured sensors the host lacks, in config order
	un := tab.Unmatched([]string{"cpu temp", "Inlet Temp"})
	if len(un) != 1 || un[0].Sensor != "Fan 1" {
		t.Errorf("Unmatched() = %v, want [Fan 1]", un)
	}

	// a sensor given twice, and an invalid one
	a.Source, b.Source = "t.conf:1", "t.conf:2"
	dup := th("cpu  temp", none, none, 70, 80)
	dup.Source = "t.conf:3"
	bad := th("Bad", none, none, 90, 80)
	bad.Source = "t.conf:4"
	_, err = NewTable([]Threshold{a, b, dup, bad})
	for _, want := range []string{
		`t.conf:3: sensor "cpu  temp" is already given (t.conf:1)`,
		`t.conf:4: sensor "Bad": warning high 90 is not below critical high 80`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewTable() error = %v, want it to contain %q", err, want)
		}
	}
}

// diffThreshold describes how two thresholds differ, or returns "".
func diffThreshold(got, want Threshold) string {
	str := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatFloat(*p, 'g', -1, 64)
	}
	g := []string{got.Sensor, str(got.Critical.Low), str(got.Warning.Low), str(got.Warning.High), str(got.Critical.High), str(got.Hysteresis), got.Source}
	w := []string{want.Sensor, str(want.Critical.Low), str(want.Warning.Low), str(want.Warning.High), str(want.Critical.High), str(want.Hysteresis), want.Source}
	if strings.Join(g, "|") != strings.Join(w, "|") {
		return "got " + strings.Join(g, " | ") + ", want " + strings.Join(w, " | ")
	}
	return ""
}
