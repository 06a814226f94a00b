package kpi

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestQuantityCheck(t *testing.T) {
	tests := []struct {
		name string
		q    quantity
		v    float64
		want string // "" when v is a good value, else part of the error
	}{
		{"room temperature", qCelsius, 22.5, ""},
		{"freezer-cold inlet", qCelsius, -40, ""},
		{"disconnected input", qCelsius, -128, "-128 celsius is below -60"},
		{"molten", qCelsius, 250, "250 celsius is above 200"},
		{"stopped fan", qRPM, 0, ""},
		{"turbine", qRPM, 150_000, "above 100000"},
		{"negative fan", qRPM, -1, "-1 rpm is negative"},
		{"-12 V rail", qVolts, -12.1, ""},
		{"a whole rack", qWatts, 20_000, ""},
		{"a power station", qWatts, 150_000, "above 100000"},
		{"NaN", qBytes, math.NaN(), "not a number"},
		{"+Inf", qSeconds, math.Inf(1), "infinite"},
		{"-Inf", qCelsius, math.Inf(-1), "infinite"},
		{"ratio of 1", qRatio, 1, ""},
		{"ratio above 1", qRatio, 1.5, "above 1"},
		{"negative load", qLoad, -0.1, "negative"},
	}
	for _, tt := range tests {
		err := tt.q.check(tt.v)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: check(%v) = %v, want nil", tt.name, tt.v, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrBadValue)):
			t.Errorf("%s: check(%v) = %v, want a bad value %q", tt.name, tt.v, err, tt.want)
		}
	}
}

func TestBatch(t *testing.T) {
	b := newBatch(SourceIPMI, t0, 2)
	b.add(MetricTempCelsius, "CPU Temp", qCelsius, 45, StatusOK, "")
	if s, err := b.result(); err != nil || len(s) != 1 {
		t.Fatalf("all good: %v, %v", s, err)
	}
	b.add(MetricFanRPM, "FAN1", qRPM, math.Inf(1), StatusOK, "")
	s, err := b.result()
	var pe *PartialError
	if len(s) != 1 || !errors.As(err, &pe) || len(pe.Errs) != 1 || pe.Errs[0].Value != "+Inf" || pe.Errs[0].Sensor != "FAN1" {
		t.Errorf("one bad: %v, %v", s, err)
	}
}
