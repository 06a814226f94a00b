package bmc

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Sensor is one threshold sensor of a BMC, read once.
type Sensor struct {
	Name   string // the SDR's ID string, e.g. "CPU Temp"
	Number uint8  // sensor number on its owner
	Type   string // "temperature", "voltage", "current", "fan"… (IPMI table 42-3)
	Unit   string // "°C", "V", "A", "W", "RPM"…; temperatures are always °C, times seconds

	// Value is the reading in Unit. It is meaningful only when Available is true, and then it is
	// always a finite number.
	Value     float64
	Available bool
	Reason    string // why Value is not available; empty when it is

	Status     Status     // the BMC's verdict on the reading
	Thresholds Thresholds // in Unit
}

// Thresholds are a sensor's limits in the sensor's unit. A nil field is a threshold the BMC does
// not report as readable.
type Thresholds struct {
	LowerNonRecoverable *float64
	LowerCritical       *float64
	LowerNonCritical    *float64
	UpperNonCritical    *float64
	UpperCritical       *float64
	UpperNonRecoverable *float64
}

func (t *Thresholds) set(l level, v float64) {
	switch l {
	case lowerNonRecoverable:
		t.LowerNonRecoverable = &v
	case lowerCritical:
		t.LowerCritical = &v
	case lowerNonCritical:
		t.LowerNonCritical = &v
	case upperNonCritical:
		t.UpperNonCritical = &v
	case upperCritical:
		t.UpperCritical = &v
	case upperNonRecoverable:
		t.UpperNonRecoverable = &v
	}
}

// Status is the BMC's verdict on a reading: the most severe threshold it is at or beyond, or
// StatusUnavailable when the BMC has no valid reading.
type Status string

// The statuses a Sensor can have.
const (
	StatusOK                  Status = "ok"
	StatusLowerNonCritical    Status = "lower-non-critical"
	StatusLowerCritical       Status = "lower-critical"
	StatusLowerNonRecoverable Status = "lower-non-recoverable"
	StatusUpperNonCritical    Status = "upper-non-critical"
	StatusUpperCritical       Status = "upper-critical"
	StatusUpperNonRecoverable Status = "upper-non-recoverable"
	StatusUnavailable         Status = "unavailable"
)

// Severity orders statuses regardless of side: ok < non-critical < critical < non-recoverable.
type Severity int

// Severities; SeverityUnknown is the severity of StatusUnavailable (and of unknown statuses).
const (
	SeverityUnknown Severity = iota - 1
	SeverityOK
	SeverityNonCritical
	SeverityCritical
	SeverityNonRecoverable
)

// Severity returns how serious the status is, whichever side the threshold is on.
func (s Status) Severity() Severity {
	switch s {
	case StatusOK:
		return SeverityOK
	case StatusLowerNonCritical, StatusUpperNonCritical:
		return SeverityNonCritical
	case StatusLowerCritical, StatusUpperCritical:
		return SeverityCritical
	case StatusLowerNonRecoverable, StatusUpperNonRecoverable:
		return SeverityNonRecoverable
	}
	return SeverityUnknown
}

var levelStatus = [numLevels]Status{
	lowerNonCritical:    StatusLowerNonCritical,
	lowerCritical:       StatusLowerCritical,
	lowerNonRecoverable: StatusLowerNonRecoverable,
	upperNonCritical:    StatusUpperNonCritical,
	upperCritical:       StatusUpperCritical,
	upperNonRecoverable: StatusUpperNonRecoverable,
}

// reading is a decoded Get Sensor Reading response (IPMI 2.0 §35.14).
type reading struct {
	Raw              uint8
	Unavailable      bool      // "reading/state unavailable" (e.g. first update in progress)
	ScanningDisabled bool      // the BMC does not scan this sensor: the reading means nothing
	Crossed          levelMask // thresholds the reading is at or beyond
}

// thresholdValues are a sensor's raw thresholds and which of them may be used.
type thresholdValues struct {
	Readable levelMask
	Raw      [numLevels]uint8
}

// classify gives the BMC's verdict on a reading. The BMC sets every threshold a reading is
// beyond (a reading past upper critical is also past upper non-critical), so the most severe
// crossed threshold wins; non-recoverable before critical before non-critical.
func classify(rd reading) Status {
	if rd.Unavailable || rd.ScanningDisabled {
		return StatusUnavailable
	}
	for _, l := range [...]level{
		upperNonRecoverable, lowerNonRecoverable,
		upperCritical, lowerCritical,
		upperNonCritical, lowerNonCritical,
	} {
		if rd.Crossed.has(l) {
			return levelStatus[l]
		}
	}
	return StatusOK
}

// converter turns a raw byte of one sensor into a value in the unit of its SDR.
type converter func(raw uint8) (float64, error)

// sensorFrom assembles what drover reports about a sensor from its record, its reading and its
// thresholds; conv converts this sensor's raw bytes (see conversion.value). Values and
// thresholds are converted to base units here, at the edge.
func sensorFrom(rec sdrFull, rd reading, th thresholdValues, conv converter) Sensor {
	unit, toBase := rec.Units.normalize()
	s := Sensor{
		Name:   rec.Name,
		Number: rec.Number,
		Type:   sensorTypeName(rec.Type),
		Unit:   unit,
		Status: classify(rd),
	}
	for l := range numLevels {
		if !th.Readable.has(l) {
			continue
		}
		if v, err := conv(th.Raw[l]); err == nil {
			s.Thresholds.set(l, toBase(v))
		}
	}
	switch {
	case rd.ScanningDisabled:
		s.Reason = "sensor scanning is disabled on the BMC"
	case rd.Unavailable:
		s.Reason = "the BMC reports the reading unavailable"
	default:
		v, err := conv(rd.Raw)
		if err != nil {
			s.Reason = err.Error()
			break
		}
		s.Value, s.Available = toBase(v), true
	}
	return s
}

// unreadable is the Sensor reported when the BMC refused to give a reading at all.
func unreadable(rec sdrFull, why string) Sensor {
	unit, _ := rec.Units.normalize()
	return Sensor{
		Name:   rec.Name,
		Number: rec.Number,
		Type:   sensorTypeName(rec.Type),
		Unit:   unit,
		Status: StatusUnavailable,
		Reason: why,
	}
}

var errNotAnalog = errors.New("sensor has no numeric reading")

// value converts a raw byte with the conversion formula of IPMI 2.0 §36.3,
//
//	y = L[(M*x + B*10^BExp) * 10^RExp]
//
// where x is the byte read in the record's analog data format. Before L is applied, y has at
// most max(-RExp, -(BExp+RExp)) decimals; it is rounded to them so that, say, 225 * 0.06 V is
// 13.5 and not 13.500000000000002. It never returns NaN or ±Inf: such results are errors.
func (c conversion) value(raw uint8) (float64, error) {
	var x int
	switch c.Format {
	case formatUnsigned:
		x = int(raw)
	case formatOnes:
		x = int(raw)
		if raw&0x80 != 0 {
			x = -int(^raw & 0x7F)
		}
	case formatTwos:
		x = int(int8(raw))
	default:
		return 0, errNotAnalog
	}
	y := float64(c.M*x)*math.Pow10(c.RExp) + float64(c.B)*math.Pow10(c.BExp+c.RExp)
	y = roundDecimals(y, max(0, -c.RExp, -(c.BExp+c.RExp)))
	y, err := linearize(c.Lin, y)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(y) || math.IsInf(y, 0) {
		return 0, fmt.Errorf("raw reading 0x%02x has no value (linearisation 0x%02x gives %v)", raw, c.Lin, y)
	}
	return y, nil
}

// roundDecimals rounds y to d decimal places (d <= 15), through its decimal representation.
func roundDecimals(y float64, d int) float64 {
	if d <= 0 || math.IsNaN(y) || math.IsInf(y, 0) {
		return y
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(y, 'f', min(d, 15), 64), 64)
	if err != nil {
		return y
	}
	return r
}

// linearize applies the linearisation function L of an SDR (IPMI 2.0 table 43-1, byte 24).
// Non-linear sensors (70h-7Fh) have no L: their factors already depend on the reading.
func linearize(lin uint8, y float64) (float64, error) {
	switch lin {
	case 0x00:
		return y, nil
	case 0x01:
		return math.Log(y), nil
	case 0x02:
		return math.Log10(y), nil
	case 0x03:
		return math.Log2(y), nil
	case 0x04:
		return math.Exp(y), nil
	case 0x05:
		return math.Pow(10, y), nil
	case 0x06:
		return math.Exp2(y), nil
	case 0x07:
		return 1 / y, nil
	case 0x08:
		return y * y, nil
	case 0x09:
		return y * y * y, nil
	case 0x0A:
		return math.Sqrt(y), nil
	case 0x0B:
		return math.Cbrt(y), nil
	}
	if lin >= linearNonLinearFirst && lin <= linearNonLinearLast {
		return y, nil
	}
	return 0, fmt.Errorf("unknown linearisation 0x%02x", lin)
}

// isNonLinear reports whether the conversion factors depend on the reading (Get Sensor Reading
// Factors must be asked for each raw value).
func (c conversion) isNonLinear() bool {
	return c.Lin >= linearNonLinearFirst && c.Lin <= linearNonLinearLast
}

// normalize returns the unit drover reports for these SDR units and the function converting a
// value to it. Temperatures become degrees Celsius and times seconds (drover's base units);
// everything else keeps the BMC's unit. Compound units (rates, modifiers, percentages) are
// reported as they are, without conversion.
func (u units) normalize() (string, func(float64) float64) {
	same := func(v float64) float64 { return v }
	if u.ModRel == 0 && u.Rate == 0 && !u.Percent {
		switch u.Base {
		case 2: // degrees F
			return "°C", func(v float64) float64 { return roundDecimals((v-32)*5/9, 9) }
		case 3: // kelvin
			return "°C", func(v float64) float64 { return roundDecimals(v-273.15, 9) }
		}
		if f, ok := secondsPer[u.Base]; ok {
			return "s", func(v float64) float64 { return v * f }
		}
	}
	name := unitName(u.Base)
	switch u.ModRel {
	case 1:
		name += "/" + unitName(u.Modifier)
	case 2:
		name += "*" + unitName(u.Modifier)
	}
	if u.Rate >= 1 && u.Rate <= 6 {
		name += [...]string{"", "/µs", "/ms", "/s", "/min", "/h", "/d"}[u.Rate]
	}
	if u.Percent {
		if name == "" {
			return "%", same
		}
		name = "% " + name
	}
	return name, same
}

// secondsPer maps the IPMI time units to seconds.
var secondsPer = map[uint8]float64{
	20: 1e-6, 21: 1e-3, 22: 1, 23: 60, 24: 3600, 25: 86400, 26: 604800,
}

// unitNames are the IPMI sensor unit type codes (IPMI 2.0 table 43-15), as symbols.
var unitNames = [...]string{
	0: "", 1: "°C", 2: "°F", 3: "K", 4: "V", 5: "A", 6: "W", 7: "J", 8: "C", 9: "VA",
	10: "nit", 11: "lm", 12: "lx", 13: "cd", 14: "kPa", 15: "psi", 16: "N", 17: "CFM", 18: "RPM", 19: "Hz",
	20: "µs", 21: "ms", 22: "s", 23: "min", 24: "h", 25: "d", 26: "week", 27: "mil", 28: "in", 29: "ft",
	30: "in³", 31: "ft³", 32: "mm", 33: "cm", 34: "m", 35: "cm³", 36: "m³", 37: "l", 38: "fl oz", 39: "rad",
	40: "sr", 41: "revolutions", 42: "cycles", 43: "g", 44: "oz", 45: "lb", 46: "ft·lb", 47: "oz·in", 48: "gauss", 49: "gilberts",
	50: "H", 51: "mH", 52: "F", 53: "µF", 54: "Ω", 55: "S", 56: "mol", 57: "Bq", 58: "ppm", 59: "",
	60: "dB", 61: "dBA", 62: "dBC", 63: "Gy", 64: "Sv", 65: "K", 66: "bit", 67: "kbit", 68: "Mbit", 69: "Gbit",
	70: "B", 71: "kB", 72: "MB", 73: "GB", 74: "words", 75: "dwords", 76: "qwords", 77: "lines", 78: "hits", 79: "misses",
	80: "retries", 81: "resets", 82: "overruns", 83: "underruns", 84: "collisions", 85: "packets", 86: "messages", 87: "characters", 88: "errors", 89: "correctable errors",
	90: "uncorrectable errors", 91: "fatal errors", 92: "grams",
}

func unitName(code uint8) string {
	if int(code) < len(unitNames) {
		return unitNames[code]
	}
	return fmt.Sprintf("unit %d", code)
}

// sensorTypeNames are the IPMI sensor type codes of table 42-3 that threshold sensors use.
var sensorTypeNames = map[uint8]string{
	0x01: "temperature", 0x02: "voltage", 0x03: "current", 0x04: "fan",
	0x07: "processor", 0x08: "power supply", 0x09: "power unit", 0x0A: "cooling device",
	0x0B: "other units-based", 0x0C: "memory", 0x15: "module/board", 0x22: "system acpi power state",
	0x29: "battery",
}

func sensorTypeName(t uint8) string {
	if n, ok := sensorTypeNames[t]; ok {
		return n
	}
	if t >= 0xC0 {
		return fmt.Sprintf("oem 0x%02x", t)
	}
	return fmt.Sprintf("type 0x%02x", t)
}
