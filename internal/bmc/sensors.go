package bmc

import (
	"context"
	"fmt"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	ipmisensor "github.com/bougou/go-ipmi/pkg/command/sensor"
	"github.com/bougou/go-ipmi/pkg/types"
)

// bmcAddr is the IPMB address of a BMC; sensors owned by another controller are addressed to it.
const bmcAddr = 0x20

// maxSDRRecords bounds a walk of the SDR repository: a BMC whose next-record IDs loop would
// otherwise keep it going until the timeout.
const maxSDRRecords = 4096

// sdrCache keeps a BMC's threshold sensor records between polls. It is read again when the
// repository's most recent addition or erase time changes (Get SDR Repository Info).
type sdrCache struct {
	records       []sdrFull
	added, erased time.Time
	filled        bool
}

// Sensors reads every threshold sensor of the BMC once: value, unit, status and thresholds. A
// sensor the BMC cannot read now is reported with Available false and a Reason; the error is for
// failures of the whole poll (session, network, SDR repository). A poll takes at most the
// configured timeout. The sensor records are cached; a poll of an unchanged BMC costs one
// Get SDR Repository Info plus a reading and a thresholds request per sensor.
func (c *Client) Sensors(ctx context.Context) ([]Sensor, error) {
	ctx, cancel := context.WithTimeout(ctx, c.s.Timeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Sensor
	err := c.do(ctx, func(ic *client.Client) error {
		recs, err := c.records(ctx, ic)
		if err != nil {
			return err
		}
		out = make([]Sensor, 0, len(recs))
		for _, rec := range recs {
			s, err := readSensor(ctx, ic, rec)
			if err != nil {
				return fmt.Errorf("read sensor %q: %w", rec.Name, err)
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// records returns the BMC's threshold sensor records, from the cache while the repository is
// unchanged. c.mu must be held.
func (c *Client) records(ctx context.Context, ic *client.Client) ([]sdrFull, error) {
	info, infoErr := ic.GetSDRRepoInfo(ctx)
	switch err := infoErr; {
	case err == nil:
		if c.sdrs.filled && info.MostRecentAdditionTime.Equal(c.sdrs.added) && info.MostRecentEraseTime.Equal(c.sdrs.erased) {
			return c.sdrs.records, nil
		}
	case isCompletion(err):
		// the BMC does not tell when its repository changes: keep what was read once
		if c.sdrs.filled {
			return c.sdrs.records, nil
		}
	default:
		return nil, fmt.Errorf("get sdr repository info: %w", err)
	}
	recs, err := readRecords(ctx, ic)
	if err != nil {
		return nil, fmt.Errorf("read sensor data records: %w", err)
	}
	c.sdrs = sdrCache{records: recs, filled: true}
	if infoErr == nil {
		c.sdrs.added, c.sdrs.erased = info.MostRecentAdditionTime, info.MostRecentEraseTime
	}
	return recs, nil
}

// readRecords walks the SDR repository and keeps the Full Sensor Records of threshold sensors
// with numeric readings. Records it cannot decode are skipped.
func readRecords(ctx context.Context, ic *client.Client) ([]sdrFull, error) {
	var out []sdrFull
	id := uint16(0) // 0000h: the first record
	for range maxSDRRecords {
		res, err := ic.GetSDR(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("get sdr 0x%04x: %w", id, err)
		}
		if t, err := sdrRecordType(res.RecordData); err == nil && t == sdrTypeFull {
			if rec, err := parseFullSDR(res.RecordData); err == nil && rec.isThreshold() {
				out = append(out, rec)
			}
		}
		if res.NextRecordID == sdrLastRecordID {
			return out, nil
		}
		id = res.NextRecordID
	}
	return nil, fmt.Errorf("the sdr repository has more than %d records, or its record IDs loop", maxSDRRecords)
}

// readSensor reads one sensor: its reading and, when the SDR says they can be read, its
// thresholds. A completion code from the BMC makes an unavailable Sensor, not an error; errors
// are transport failures.
func readSensor(ctx context.Context, ic *client.Client, rec sdrFull) (Sensor, error) {
	if rec.Owner != bmcAddr || rec.LUN != 0 {
		// a sensor of a satellite controller: address the request to its owner, as the SDR says
		cc := (&client.CommandContext{}).WithResponderAddr(rec.Owner).WithResponderLUN(rec.LUN)
		ctx = client.WithCommandContext(ctx, cc)
	}
	res, err := ic.GetSensorReading(ctx, rec.Number)
	if err != nil {
		if isCompletion(err) {
			return unreadable(rec, fmt.Sprintf("the BMC refused Get Sensor Reading: %v", err)), nil
		}
		return Sensor{}, err
	}
	conv := converter(rec.Conv.value)
	if rec.Conv.isNonLinear() {
		// the factors of a non-linear sensor depend on the raw value; the BMC gives them per value
		conv = func(raw uint8) (float64, error) {
			f, err := ic.GetSensorReadingFactors(ctx, rec.Number, raw)
			if err != nil {
				return 0, fmt.Errorf("get sensor reading factors: %w", err)
			}
			return rec.Conv.withFactors(f.ReadingFactors).value(raw)
		}
	}
	var th thresholdValues
	switch rec.Access {
	case thresholdsFixed:
		th = thresholdValues{Readable: rec.Readable, Raw: rec.Fixed}
	case thresholdsReadable, thresholdsSettable:
		tr, err := ic.GetSensorThresholds(ctx, rec.Number)
		switch {
		case err == nil:
			th = thresholdsFrom(rec, tr)
		case !isCompletion(err):
			return Sensor{}, err
		}
	}
	return sensorFrom(rec, readingFrom(res), th, conv), nil
}

// isCompletion reports whether err is the BMC answering with a completion code other than
// success (as opposed to no answer at all).
func isCompletion(err error) bool {
	_, ok := types.IsResponseError(err)
	return ok
}

// readingFrom takes what drover needs from a decoded Get Sensor Reading response.
func readingFrom(res *ipmisensor.GetSensorReadingResponse) reading {
	rd := reading{
		Raw:              res.Reading,
		Unavailable:      res.ReadingUnavailable,
		ScanningDisabled: res.SensorScanningDisabled,
	}
	for l, crossed := range [numLevels]bool{
		lowerNonCritical:    res.Below_LNC,
		lowerCritical:       res.Below_LCR,
		lowerNonRecoverable: res.Below_LNR,
		upperNonCritical:    res.Above_UNC,
		upperCritical:       res.Above_UCR,
		upperNonRecoverable: res.Above_UNR,
	} {
		if crossed {
			rd.Crossed |= 1 << l
		}
	}
	return rd
}

// thresholdsFrom takes the thresholds of a Get Sensor Thresholds response that both the SDR and
// the response say are readable.
func thresholdsFrom(rec sdrFull, res *ipmisensor.GetSensorThresholdsResponse) thresholdValues {
	var th thresholdValues
	for l, t := range [numLevels]struct {
		readable bool
		raw      uint8
	}{
		lowerNonCritical:    {res.LNC_Readable, res.LNC_Raw},
		lowerCritical:       {res.LCR_Readable, res.LCR_Raw},
		lowerNonRecoverable: {res.LNR_Readable, res.LNR_Raw},
		upperNonCritical:    {res.UNC_Readable, res.UNC_Raw},
		upperCritical:       {res.UCR_Readable, res.UCR_Raw},
		upperNonRecoverable: {res.UNR_Readable, res.UNR_Raw},
	} {
		if t.readable && rec.Readable.has(level(l)) {
			th.Readable |= 1 << l
			th.Raw[l] = t.raw
		}
	}
	return th
}

// withFactors returns the conversion with the factors the BMC gave for one raw value of a
// non-linear sensor.
func (c conversion) withFactors(f types.ReadingFactors) conversion {
	c.M, c.B, c.BExp, c.RExp = int(f.M), int(f.B), int(f.B_Exp), int(f.R_Exp)
	return c
}
