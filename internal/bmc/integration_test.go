package bmc_test

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/bmc"
	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/testenv"
)

// These tests run against the BMCs of the local testbed (scripts/testbed up ipmi): one ipmi_sim per
// hypervisor, whose sensors are defined in scripts/testbed.d/ipmi.sh (TB_IPMI_SENSORS). Other
// tests may change readings at the same time, so only TestCPUTempCritical looks at values.

// want is what the testbed's sensor table says about each sensor: unit, type, and the thresholds
// that exist (in the sensor's unit; NaN = absent).
var want = map[string]struct {
	unit, typ  string
	thresholds [6]float64 // LNR, LC, LNC, UNC, UC, UNR
}{
	"CPU Temp":        {"°C", "temperature", [6]float64{nan, nan, nan, 80, 90, 100}},
	"Inlet Temp":      {"°C", "temperature", [6]float64{nan, nan, nan, 40, 45, 50}},
	"FAN1":            {"RPM", "fan", [6]float64{500, 1000, 1500, nan, nan, nan}},
	"12V":             {"V", "voltage", [6]float64{10.2, 10.8, 11.4, 12.6, 13.2, 13.8}},
	"Pwr Consumption": {"W", "current", [6]float64{nan, nan, nan, 800, 900, 1000}},
}

var nan = math.NaN()

func thresholdList(t bmc.Thresholds) [6]*float64 {
	return [6]*float64{t.LowerNonRecoverable, t.LowerCritical, t.LowerNonCritical, t.UpperNonCritical, t.UpperCritical, t.UpperNonRecoverable}
}

func dial(t *testing.T, cfg config.BMC) *bmc.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := bmc.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

func TestTestbedSensors(t *testing.T) {
	cfg := testenv.Config(t)
	if len(cfg.Hypervisors) == 0 {
		t.Fatal("the testbed config lists no hypervisors")
	}
	for _, hv := range cfg.Hypervisors {
		for _, intf := range []string{"lanplus", "lan"} {
			t.Run(hv.Name+"/"+intf, func(t *testing.T) {
				bc := hv.BMC
				bc.Interface = intf
				c := dial(t, bc)
				ctx := context.Background()

				info, err := c.Info(ctx)
				if err != nil {
					t.Fatalf("info: %v", err)
				}
				if info.Firmware == "" || info.IPMIVersion != "2.0" || info.Interface != intf {
					t.Errorf("info = %+v, want a firmware revision, IPMI 2.0, interface %s", info, intf)
				}

				start := time.Now()
				sensors, err := c.Sensors(ctx)
				first := time.Since(start)
				if err != nil {
					t.Fatalf("sensors: %v", err)
				}
				start = time.Now()
				if _, err := c.Sensors(ctx); err != nil { // from the SDR cache
					t.Fatalf("second poll: %v", err)
				}
				t.Logf("%s %s: first poll %v (reads the SDRs), cached poll %v", hv.Name, intf, first, time.Since(start))

				seen := map[string]bool{}
				for _, s := range sensors {
					w, ok := want[s.Name]
					if !ok {
						continue
					}
					seen[s.Name] = true
					if s.Unit != w.unit || s.Type != w.typ {
						t.Errorf("%s: unit %q type %q, want %q %q", s.Name, s.Unit, s.Type, w.unit, w.typ)
					}
					if !s.Available || math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || s.Status == bmc.StatusUnavailable {
						t.Errorf("%s: available %v value %v status %s (%s), want a reading", s.Name, s.Available, s.Value, s.Status, s.Reason)
					}
					for i, got := range thresholdList(s.Thresholds) {
						switch {
						case math.IsNaN(w.thresholds[i]) && got != nil:
							t.Errorf("%s: threshold %d = %v, want none", s.Name, i, *got)
						case !math.IsNaN(w.thresholds[i]) && got == nil:
							t.Errorf("%s: threshold %d missing, want %v", s.Name, i, w.thresholds[i])
						case got != nil && *got != w.thresholds[i]:
							t.Errorf("%s: threshold %d = %v, want %v", s.Name, i, *got, w.thresholds[i])
						}
					}
				}
				for name := range want {
					if !seen[name] {
						t.Errorf("sensor %q missing from %d sensors", name, len(sensors))
					}
				}
			})
		}
	}
}

// TestCPUTempCritical drives a reading over a threshold with the testbed script and checks that
// the client sees the value and the BMC's verdict.
func TestCPUTempCritical(t *testing.T) {
	hv := testenv.Hypervisor(t, "hv2")
	testenv.LockBMC(t, "hv2") // other packages' tests set hv2's sensors too
	c := dial(t, hv.BMC)
	ctx := context.Background()

	cpu := func() bmc.Sensor {
		t.Helper()
		sensors, err := c.Sensors(ctx)
		if err != nil {
			t.Fatalf("sensors: %v", err)
		}
		for _, s := range sensors {
			if s.Name == "CPU Temp" {
				return s
			}
		}
		t.Fatal("no CPU Temp sensor")
		return bmc.Sensor{}
	}

	before := cpu()
	restore := "45" // the testbed's nominal CPU Temp
	if before.Available && before.Value != 91 {
		restore = strconv.FormatFloat(before.Value, 'f', -1, 64)
	}
	t.Cleanup(func() { testenv.Script(t, "sensor", "hv2", "cpu", restore) })
	testenv.Script(t, "sensor", "hv2", "cpu", "91")

	// ipmi_sim reads CPU Temp from its poll file once a second
	var got bmc.Sensor
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = cpu()
		if got.Available && got.Value == 91 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU Temp still %v (%s) 5 s after setting it to 91", got.Value, got.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got.Unit != "°C" {
		t.Errorf("unit %q, want °C", got.Unit)
	}
	// 91 °C is above upper critical (90) and below upper non-recoverable (100)
	if got.Status != bmc.StatusUpperCritical || got.Status.Severity() != bmc.SeverityCritical {
		t.Errorf("status %s (severity %d), want %s", got.Status, got.Status.Severity(), bmc.StatusUpperCritical)
	}
	if uc := got.Thresholds.UpperCritical; uc == nil || *uc != 90 {
		t.Errorf("upper critical threshold %v, want 90", uc)
	}
}

// TestWrongPassword: a wrong password is a clear error naming the BMC, within the timeout, on both
// LAN interfaces (IPMI 1.5 BMCs answer a wrong password with silence).
func TestWrongPassword(t *testing.T) {
	hv := testenv.Config(t).Hypervisors[0]
	right, err := config.Secret(hv.BMC.Password, hv.BMC.PasswordFile, "bmc password")
	if err != nil {
		t.Fatal(err)
	}
	for _, intf := range []string{"lanplus", "lan"} {
		t.Run(intf, func(t *testing.T) {
			bc := hv.BMC
			bc.Interface = intf
			bc.Password, bc.PasswordFile = "Wr0ngPassw0rd", ""
			bc.Timeout = 2 * time.Second
			start := time.Now()
			c, err := bmc.Dial(context.Background(), bc)
			took := time.Since(start)
			if err == nil {
				_ = c.Close(context.Background())
				t.Fatal("dial with a wrong password succeeded")
			}
			t.Logf("after %v: %v", took, err)
			if !errors.Is(err, bmc.ErrAuth) {
				t.Errorf("error is not ErrAuth: %v", err)
			}
			addr := bc.Host + ":" + strconv.Itoa(bc.Port)
			msg := err.Error()
			if !strings.Contains(msg, addr) || !strings.Contains(msg, "password") {
				t.Errorf("error %q does not name %s and the password", msg, addr)
			}
			if strings.Contains(msg, "Wr0ngPassw0rd") || strings.Contains(msg, right) {
				t.Errorf("error %q contains a password", msg)
			}
			if took > bc.Timeout+time.Second {
				t.Errorf("took %v, want at most the timeout %v", took, bc.Timeout)
			}
		})
	}
}
