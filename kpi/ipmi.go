package kpi

import (
	"context"
	"fmt"
	"time"

	"github.com/drover-hpc/drover/internal/bmc"
)

// SensorReader reads a BMC's threshold sensors; *bmc.Client is one.
type SensorReader interface {
	Sensors(ctx context.Context) ([]bmc.Sensor, error)
}

var _ SensorReader = (*bmc.Client)(nil)

// IPMI reads a hypervisor's BMC sensors: temperatures, fans, voltages, currents, power and energy,
// labelled with the BMC's sensor names ("CPU Temp") and carrying the BMC's status. Sensors of
// other units (percentages, airflow…) are not KPIs drover uses and are skipped. A sensor the BMC
// cannot read now is reported as an ErrUnavailable per-sample error.
type IPMI struct {
	r    SensorReader
	now  func() time.Time
	seen presence
}

var _ Collector = (*IPMI)(nil)

// NewIPMI returns a collector polling r; now stamps the samples (time.Now when nil).
func NewIPMI(r SensorReader, now func() time.Time) *IPMI {
	if now == nil {
		now = time.Now
	}
	return &IPMI{r: r, now: now}
}

// ipmiUnits maps internal/bmc's units (already in base units) to drover's metrics.
var ipmiUnits = map[string]struct {
	metric string
	q      quantity
}{
	"°C":  {MetricTempCelsius, qCelsius},
	"RPM": {MetricFanRPM, qRPM},
	"V":   {MetricVoltageVolts, qVolts},
	"A":   {MetricCurrentAmperes, qAmperes},
	"W":   {MetricPowerWatts, qWatts},
	"J":   {MetricEnergyJoules, qJoules},
}

// Collect polls the BMC once. A failed poll (session, network) is the error, with no samples.
func (c *IPMI) Collect(ctx context.Context) ([]Sample, error) {
	sensors, err := c.r.Sensors(ctx)
	if err != nil {
		return nil, fmt.Errorf("ipmi: %w", err)
	}
	b := newBatch(SourceIPMI, c.now(), len(sensors))
	present := make(map[string]struct{}, len(sensors))
	for _, s := range sensors {
		u, ok := ipmiUnits[s.Unit]
		if !ok {
			continue
		}
		present[presenceKey(s.Name, u.metric)] = struct{}{}
		if !s.Available {
			b.fail(u.metric, s.Name, "", fmt.Errorf("%w: %s", ErrUnavailable, s.Reason))
			continue
		}
		b.add(u.metric, s.Name, u.q, s.Value, string(s.Status), "")
	}
	b.reportVanished(c.seen.update(present))
	return b.result()
}
