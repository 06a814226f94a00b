package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/kpi"
)

// The spool's batch encoding, version 1. A batch's strings (sources, metrics, sensors…) repeat in
// every cycle, so they are written once in a table and samples refer to them by index:
//
//	version byte | seq uint64 | samples uint32 | events uint32     (fixed: read without decoding)
//	agent, host string | table: n, n strings | base time varint (unix ns)
//	samples: source, metric, vnode, sensor, unit, status uvarint (table indexes),
//	         time (0: zero time, else 1 + zigzag(ns - base)) uvarint, value float64
//	events:  host, sensor, kind, message uvarint, at, predicted (as sample times) uvarint,
//	         from, to byte, value, threshold, confidence float64
//
// Strings are uvarint length + bytes; integers little-endian.
const (
	codecVersion = 1
	fixedHeader  = 1 + 8 + 4 + 4
)

var errCodec = errors.New("undecodable batch")

type encoder struct {
	buf   []byte
	index map[string]uint64
	table []string
}

func (e *encoder) str(s string) uint64 {
	i, ok := e.index[s]
	if !ok {
		i = uint64(len(e.table))
		e.index[s] = i
		e.table = append(e.table, s)
	}
	return i
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time, base int64) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	d := t.UnixNano() - base
	return binary.AppendUvarint(b, 1+uint64((d<<1)^(d>>63)))
}

func appendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

// encodeBatch returns b's encoding.
func encodeBatch(b *Batch) []byte {
	e := encoder{index: map[string]uint64{}}
	var base int64
	if len(b.Samples) > 0 && !b.Samples[0].Time.IsZero() {
		base = b.Samples[0].Time.UnixNano()
	}
	// The body first (it fills the table), then header + table + body.
	body := make([]byte, 0, 32+len(b.Samples)*18+len(b.Events)*64)
	for i := range b.Samples {
		s := &b.Samples[i]
		for _, v := range [...]string{s.Source, s.Metric, s.VNode, s.Sensor, s.Unit, s.Status} {
			body = binary.AppendUvarint(body, e.str(v))
		}
		body = appendTime(body, s.Time, base)
		body = appendFloat(body, s.Value)
	}
	for i := range b.Events {
		ev := &b.Events[i]
		for _, v := range [...]string{ev.Host, ev.Sensor, string(ev.Kind), ev.Message} {
			body = binary.AppendUvarint(body, e.str(v))
		}
		body = appendTime(body, ev.At, base)
		body = appendTime(body, ev.PredictedAt, base)
		body = append(body, byte(ev.From), byte(ev.To))
		body = appendFloat(body, ev.Value)
		body = appendFloat(body, ev.Threshold)
		body = appendFloat(body, ev.Confidence)
	}
	out := make([]byte, 0, fixedHeader+64+len(e.table)*16+len(body))
	out = append(out, codecVersion)
	out = binary.LittleEndian.AppendUint64(out, b.Seq)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(b.Samples)))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(b.Events)))
	out = appendString(out, b.Agent)
	out = appendString(out, b.Host)
	out = binary.AppendUvarint(out, uint64(len(e.table)))
	for _, s := range e.table {
		out = appendString(out, s)
	}
	out = binary.AppendVarint(out, base)
	return append(out, body...)
}

// batchHeader is the fixed part of an encoding.
type batchHeader struct {
	seq             uint64
	samples, events int
}

func decodeHeader(p []byte) (batchHeader, error) {
	if len(p) < fixedHeader || p[0] != codecVersion {
		return batchHeader{}, fmt.Errorf("%w: short or unknown version", errCodec)
	}
	return batchHeader{
		seq:     binary.LittleEndian.Uint64(p[1:]),
		samples: int(binary.LittleEndian.Uint32(p[9:])),
		events:  int(binary.LittleEndian.Uint32(p[13:])),
	}, nil
}

type decoder struct {
	p   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad varint", errCodec)
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.p)) {
		d.err = fmt.Errorf("%w: truncated", errCodec)
		return nil
	}
	b := d.p[:n]
	d.p = d.p[n:]
	return b
}

func (d *decoder) str() string { return string(d.bytes(d.uvarint())) }

func (d *decoder) float() float64 {
	b := d.bytes(8)
	if b == nil {
		return 0
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b))
}

func (d *decoder) time(base int64) time.Time {
	v := d.uvarint()
	if v == 0 {
		return time.Time{}
	}
	u := v - 1
	delta := int64(u>>1) ^ -int64(u&1)
	return time.Unix(0, base+delta)
}

func (d *decoder) ref(table []string) string {
	i := d.uvarint()
	if i >= uint64(len(table)) {
		if d.err == nil {
			d.err = fmt.Errorf("%w: string %d of %d", errCodec, i, len(table))
		}
		return ""
	}
	return table[i]
}

// decodeBatch is encodeBatch's inverse.
func decodeBatch(p []byte) (Batch, error) {
	h, err := decodeHeader(p)
	if err != nil {
		return Batch{}, err
	}
	d := decoder{p: p[fixedHeader:]}
	b := Batch{Seq: h.seq, Agent: d.str(), Host: d.str()}
	n := d.uvarint()
	if n > uint64(len(d.p)) {
		return Batch{}, fmt.Errorf("%w: table of %d strings in %d bytes", errCodec, n, len(d.p))
	}
	table := make([]string, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		table = append(table, d.str())
	}
	base, m := binary.Varint(d.p)
	if m <= 0 {
		return Batch{}, fmt.Errorf("%w: bad base time", errCodec)
	}
	d.p = d.p[m:]
	// Each sample takes at least 15 bytes: a corrupt count cannot make us allocate much.
	if h.samples > len(d.p)/15+1 || h.events > len(d.p)/30+1 {
		return Batch{}, fmt.Errorf("%w: %d samples and %d events in %d bytes", errCodec, h.samples, h.events, len(d.p))
	}
	if h.samples > 0 {
		b.Samples = make([]kpi.Sample, h.samples)
	}
	for i := range b.Samples {
		s := &b.Samples[i]
		s.Source, s.Metric, s.VNode, s.Sensor, s.Unit, s.Status = d.ref(table), d.ref(table), d.ref(table), d.ref(table), d.ref(table), d.ref(table)
		s.Time = d.time(base)
		s.Value = d.float()
	}
	if h.events > 0 {
		b.Events = make([]health.Event, h.events)
	}
	for i := range b.Events {
		e := &b.Events[i]
		e.Host, e.Sensor, e.Kind, e.Message = d.ref(table), d.ref(table), health.Kind(d.ref(table)), d.ref(table)
		e.At = d.time(base)
		e.PredictedAt = d.time(base)
		st := d.bytes(2)
		if st != nil {
			e.From, e.To = health.State(st[0]), health.State(st[1])
		}
		e.Value, e.Threshold, e.Confidence = d.float(), d.float(), d.float()
	}
	if d.err == nil && len(d.p) != 0 {
		d.err = fmt.Errorf("%w: %d bytes left over", errCodec, len(d.p))
	}
	if d.err != nil {
		return Batch{}, d.err
	}
	return b, nil
}
