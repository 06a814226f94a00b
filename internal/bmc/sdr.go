package bmc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// IPMI 2.0 §43: Sensor Data Record types and layout.
const (
	sdrHeaderLen    = 5    // record ID (2), SDR version, record type, record length
	sdrTypeFull     = 0x01 // Full Sensor Record
	sdrFullMinLen   = 48   // header + fixed part of a Full Sensor Record, before the ID string
	eventTypeThresh = 0x01 // event/reading type code of threshold sensors
	sdrLastRecordID = 0xFFFF
)

var errShortSDR = errors.New("sensor data record too short")

// level is one of the six IPMI thresholds. The numbering is IPMI's own (readable and settable
// threshold masks, Get Sensor Thresholds): bit n of a levelMask is level n.
type level uint8

const (
	lowerNonCritical level = iota
	lowerCritical
	lowerNonRecoverable
	upperNonCritical
	upperCritical
	upperNonRecoverable
	numLevels
)

// levelMask is a set of thresholds: readable ones, or the ones a reading has crossed.
type levelMask uint8

func (m levelMask) has(l level) bool { return m&(1<<l) != 0 }

// Threshold access support, bits [3:2] of the sensor capabilities byte.
const (
	thresholdsNone     = 0 // no thresholds
	thresholdsReadable = 1 // read with Get Sensor Thresholds, per the readable mask
	thresholdsSettable = 2 // readable and settable
	thresholdsFixed    = 3 // fixed: the values are in the SDR, per the readable mask
)

// analogFormat is how the raw byte of a reading is to be read (units 1, bits [7:6]).
type analogFormat uint8

const (
	formatUnsigned  analogFormat = 0
	formatOnes      analogFormat = 1 // 1's complement
	formatTwos      analogFormat = 2 // 2's complement
	formatNotAnalog analogFormat = 3 // no numeric reading
)

// Linearisation codes (SDR byte 24) beyond the functions of linearize.
const (
	linearLinear         uint8 = 0x00
	linearNonLinearFirst uint8 = 0x70 // 70h-7Fh: non-linear, factors from Get Sensor Reading Factors
	linearNonLinearLast  uint8 = 0x7F
)

// conversion holds the parameters of the sensor reading conversion formula (IPMI 2.0 §36.3):
//
//	y = L[(M*x + B*10^BExp) * 10^RExp]
type conversion struct {
	Format analogFormat
	Lin    uint8 // linearisation L: 00h linear, 01h ln … 0Bh cube root; 70h-7Fh non-linear
	M, B   int   // 10-bit two's complement
	BExp   int   // K1, 4-bit two's complement
	RExp   int   // K2, 4-bit two's complement
}

// units is the unit of a sensor as its SDR states it (units 1, base unit, modifier unit).
type units struct {
	Rate     uint8 // 0 none, 1 per µs, 2 per ms, 3 per s, 4 per minute, 5 per hour, 6 per day
	ModRel   uint8 // 0 none, 1 base/modifier, 2 base*modifier
	Percent  bool
	Base     uint8 // IPMI table 43-15
	Modifier uint8
}

// sdrFull is what drover uses of a Full Sensor Record (IPMI 2.0 §43.1, table 43-1).
type sdrFull struct {
	RecordID  uint16
	Owner     uint8 // sensor owner ID: IPMB slave address (bit 0 = 0) or system software ID
	LUN       uint8 // sensor owner LUN
	Number    uint8
	Entity    uint8
	Type      uint8 // sensor type, IPMI table 42-3
	EventType uint8 // event/reading type code; eventTypeThresh for threshold sensors
	Access    uint8 // threshold access support: thresholdsNone … thresholdsFixed
	Returned  levelMask
	Readable  levelMask
	Units     units
	Conv      conversion
	Fixed     [numLevels]uint8 // threshold values stored in the record (raw)
	Name      string
}

// isThreshold reports whether the record describes a threshold sensor with a numeric reading,
// the only kind Sensors reports.
func (r sdrFull) isThreshold() bool {
	return r.EventType == eventTypeThresh && r.Conv.Format != formatNotAnalog
}

// sdrRecordType returns the record type of a raw SDR (header included).
func sdrRecordType(data []byte) (uint8, error) {
	if len(data) < sdrHeaderLen {
		return 0, fmt.Errorf("%w: %d bytes, header needs %d", errShortSDR, len(data), sdrHeaderLen)
	}
	return data[3], nil
}

// parseFullSDR decodes a raw Full Sensor Record, header included, as returned by Get SDR.
// Byte offsets below are 0-based; IPMI's table 43-1 numbers the same bytes from 1.
func parseFullSDR(data []byte) (sdrFull, error) {
	var r sdrFull
	t, err := sdrRecordType(data)
	if err != nil {
		return r, err
	}
	if t != sdrTypeFull {
		return r, fmt.Errorf("record type 0x%02x is not a full sensor record (0x%02x)", t, sdrTypeFull)
	}
	if len(data) < sdrFullMinLen {
		return r, fmt.Errorf("%w: full sensor record of %d bytes, needs at least %d", errShortSDR, len(data), sdrFullMinLen)
	}
	r.RecordID = binary.LittleEndian.Uint16(data[0:2])
	r.Owner = data[5]
	r.LUN = data[6] & 0x03
	r.Number = data[7]
	r.Entity = data[8]
	r.Access = data[11] >> 2 & 0x03
	r.Type = data[12]
	r.EventType = data[13]
	// bits [6:4] of the assertion (lower) and deassertion (upper) masks' high bytes: which threshold
	// comparisons Get Sensor Reading returns, NC/C/NR in that order on each side
	r.Returned = levelMask(data[15]>>4&0x07) | levelMask(data[17]>>4&0x07)<<3
	r.Readable = levelMask(data[18] & 0x3F) // byte 19; byte 20 (data[19]) is the settable mask
	r.Conv = conversion{
		Format: analogFormat(data[20] >> 6),
		Lin:    data[23] & 0x7F,
		M:      signExtend(uint(data[24])|uint(data[25]>>6)<<8, 10),
		B:      signExtend(uint(data[26])|uint(data[27]>>6)<<8, 10),
		RExp:   signExtend(uint(data[29]>>4), 4),
		BExp:   signExtend(uint(data[29]&0x0F), 4),
	}
	r.Units = units{
		Rate:     data[20] >> 3 & 0x07,
		ModRel:   data[20] >> 1 & 0x03,
		Percent:  data[20]&0x01 != 0,
		Base:     data[21],
		Modifier: data[22],
	}
	r.Fixed[upperNonRecoverable] = data[36]
	r.Fixed[upperCritical] = data[37]
	r.Fixed[upperNonCritical] = data[38]
	r.Fixed[lowerNonRecoverable] = data[39]
	r.Fixed[lowerCritical] = data[40]
	r.Fixed[lowerNonCritical] = data[41]
	r.Name = idString(data[47], data[48:])
	if r.Name == "" {
		r.Name = fmt.Sprintf("sensor 0x%02x", r.Number)
	}
	return r, nil
}

// idString decodes an SDR ID string from its type/length byte and the bytes after it. Only the
// 8-bit ASCII+Latin-1 encoding (type 11b), which BMCs use for sensor names, is decoded; other
// encodings give "". The length is clamped to the bytes present.
func idString(typeLen byte, b []byte) string {
	if typeLen>>6 != 0x03 {
		return ""
	}
	n := min(int(typeLen&0x1F), len(b))
	var s strings.Builder
	for _, c := range b[:n] {
		if c == 0 {
			break
		}
		s.WriteRune(rune(c)) // Latin-1 bytes are the first 256 code points
	}
	return strings.TrimSpace(s.String())
}

// signExtend reads the low bits of v as a two's complement number.
func signExtend(v uint, bits uint) int {
	v &= 1<<bits - 1
	if v&(1<<(bits-1)) != 0 {
		return int(v) - 1<<bits
	}
	return int(v)
}
