package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The spool keeps batches on disk while the database is away or the memory queue is full. It is a
// directory of segment files, seg-NNNNNNNNNNNNNNNN.spool, each a sequence of framed records:
//
//	magic "DRV1" | payload length uint32 | CRC-32C of the payload uint32 | payload (encodeBatch)
//
// Records are only ever appended, and each append is fsynced before the batch counts as spooled,
// so a crash mid-write can tear only the record being written; older ones are intact. On open, a
// record whose frame or checksum is wrong is reported, and reading resumes at the next valid
// frame. A process appends to a segment of its own, started on open. A segment is deleted once all
// its records are delivered (or set aside); batches left in a partly delivered segment are sent
// again after a restart and skipped by the database as already delivered.
const (
	recordMagic  = "DRV1"
	recordHeader = 12
	maxRecord    = 1 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// frame returns payload framed as a record.
func frame(payload []byte) []byte {
	out := make([]byte, 0, recordHeader+len(payload))
	out = append(out, recordMagic...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(payload)))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(payload, crcTable))
	return append(out, payload...)
}

// record is one spooled batch.
type record struct {
	seg     *segment
	off     int64 // of the frame
	size    int64 // of the frame
	seq     uint64
	samples int
	events  int
	done    bool // delivered, rejected or dropped
}

type segment struct {
	path string
	num  uint64
	size int64
	recs []*record
	live int // records not done
}

// corruption is an unreadable stretch of a segment found on open.
type corruption struct {
	path      string
	off, size int64
	reason    string
}

func (c corruption) String() string {
	return fmt.Sprintf("%s: %d bytes at offset %d unreadable (%s)", c.path, c.size, c.off, c.reason)
}

type spool struct {
	dir      string
	maxBytes int64
	segBytes int64

	segs   []*segment // oldest first; the last one is active when active != nil
	active *os.File
	next   uint64 // number of the next segment

	bytes   int64
	batches int
	samples int
	peak    int64
}

// openSpool reads the segments in dir (creating it), and reports what it found unreadable.
func openSpool(dir string, maxBytes, segBytes int64) (*spool, []corruption, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "seg-*.spool"))
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	sort.Strings(names)
	sp := &spool{dir: dir, maxBytes: maxBytes, segBytes: segBytes, next: 1}
	var bad []corruption
	for _, name := range names {
		num, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), "seg-"), ".spool"), 16, 64)
		if err != nil {
			bad = append(bad, corruption{path: name, reason: "not a segment name: left alone"})
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, nil, fmt.Errorf("spool: read %s: %w", name, err)
		}
		seg := &segment{path: name, num: num, size: int64(len(data))}
		bad = append(bad, scan(seg, data)...)
		sp.next = max(sp.next, num+1)
		if seg.live == 0 {
			if err := os.Remove(name); err != nil {
				return nil, nil, fmt.Errorf("spool: %w", err)
			}
			continue
		}
		sp.segs = append(sp.segs, seg)
		sp.bytes += seg.size
		for _, r := range seg.recs {
			sp.batches++
			sp.samples += r.samples
		}
	}
	sp.peak = sp.bytes
	return sp, bad, nil
}

// scan indexes the records of data, skipping unreadable stretches.
func scan(seg *segment, data []byte) []corruption {
	var bad []corruption
	off := int64(0)
	for off < int64(len(data)) {
		r, reason := readFrame(data[off:])
		if reason == "" {
			h, _ := decodeHeader(data[off+recordHeader : off+r])
			seg.recs = append(seg.recs, &record{seg: seg, off: off, size: r, seq: h.seq, samples: h.samples, events: h.events})
			seg.live++
			off += r
			continue
		}
		// Resume at the next frame that checks out.
		next := int64(len(data))
		for i := off + 1; i < int64(len(data)); i++ {
			j := bytes.Index(data[i:], []byte(recordMagic))
			if j < 0 {
				break
			}
			if _, why := readFrame(data[i+int64(j):]); why == "" {
				next = i + int64(j)
				break
			}
			i += int64(j)
		}
		if next == int64(len(data)) && reason == "truncated" {
			reason = "torn write at the end: a crash while spooling"
		}
		bad = append(bad, corruption{path: seg.path, off: off, size: next - off, reason: reason})
		off = next
	}
	return bad
}

// readFrame checks the frame at the start of b and returns its size, or why it is unreadable.
func readFrame(b []byte) (int64, string) {
	if len(b) < recordHeader {
		return 0, "truncated"
	}
	if string(b[:4]) != recordMagic {
		return 0, "no record frame"
	}
	n := int64(binary.LittleEndian.Uint32(b[4:]))
	if n > maxRecord {
		return 0, "impossible length"
	}
	if int64(len(b)) < recordHeader+n {
		return 0, "truncated"
	}
	payload := b[recordHeader : recordHeader+n]
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(b[8:]) {
		return 0, "checksum mismatch"
	}
	if _, err := decodeHeader(payload); err != nil {
		return 0, err.Error()
	}
	return recordHeader + n, ""
}

// pending is a batch to spool.
type pending struct {
	seq             uint64
	samples, events int
	payload         []byte
}

// append spools batches, oldest first, with one fsync. To stay within the budget it drops the
// oldest spooled records first (returned); a batch larger than the whole budget is dropped itself
// (returned as a record without segment).
func (sp *spool) append(ps []pending) (dropped []*record, err error) {
	var buf []byte
	var recs []*record
	for _, p := range ps {
		f := frame(p.payload)
		need := int64(len(f))
		if need > sp.maxBytes {
			dropped = append(dropped, &record{seq: p.seq, samples: p.samples, events: p.events, size: need})
			continue
		}
		for sp.bytes+int64(len(buf))+need > sp.maxBytes && len(sp.segs) > 0 {
			if sp.active != nil && len(sp.segs) == 1 {
				// Only the active segment is left: write out what is pending first, then drop it.
				if err := sp.flush(buf, recs); err != nil {
					return dropped, err
				}
				buf, recs = nil, nil
			}
			d, err := sp.dropOldest()
			dropped = append(dropped, d...)
			if err != nil {
				return dropped, err
			}
		}
		if sp.active == nil || sp.segs[len(sp.segs)-1].size+int64(len(buf)) >= sp.segBytes {
			if err := sp.flush(buf, recs); err != nil {
				return dropped, err
			}
			buf, recs = nil, nil
			if err := sp.rotate(); err != nil {
				return dropped, err
			}
		}
		seg := sp.segs[len(sp.segs)-1]
		recs = append(recs, &record{seg: seg, off: seg.size + int64(len(buf)), size: need, seq: p.seq, samples: p.samples, events: p.events})
		buf = append(buf, f...)
	}
	return dropped, sp.flush(buf, recs)
}

// flush writes buf (the frames of recs) to the active segment and fsyncs it.
func (sp *spool) flush(buf []byte, recs []*record) error {
	if len(buf) == 0 {
		return nil
	}
	seg := sp.segs[len(sp.segs)-1]
	if _, err := sp.active.Write(buf); err != nil {
		// Cut a partial write off, so the segment stays a sequence of whole records.
		_ = sp.active.Truncate(seg.size)
		return fmt.Errorf("spool: write %s: %w", seg.path, err)
	}
	if err := sp.active.Sync(); err != nil {
		return fmt.Errorf("spool: sync %s: %w", seg.path, err)
	}
	seg.size += int64(len(buf))
	sp.bytes += int64(len(buf))
	sp.peak = max(sp.peak, sp.bytes)
	for _, r := range recs {
		seg.recs = append(seg.recs, r)
		seg.live++
		sp.batches++
		sp.samples += r.samples
	}
	return nil
}

// rotate starts a new active segment.
func (sp *spool) rotate() error {
	if err := sp.closeActive(); err != nil {
		return err
	}
	path := filepath.Join(sp.dir, fmt.Sprintf("seg-%016x.spool", sp.next))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(sp.dir); err != nil {
		f.Close()
		return err
	}
	sp.segs = append(sp.segs, &segment{path: path, num: sp.next})
	sp.next++
	sp.active = f
	return nil
}

func (sp *spool) closeActive() error {
	if sp.active == nil {
		return nil
	}
	err := sp.active.Close()
	sp.active = nil
	// An empty active segment is not kept.
	if last := sp.segs[len(sp.segs)-1]; last.size == 0 {
		sp.segs = sp.segs[:len(sp.segs)-1]
		if rerr := os.Remove(last.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("spool: close segment: %w", err)
	}
	return nil
}

// dropOldest deletes the oldest segment and returns its records not yet done.
func (sp *spool) dropOldest() ([]*record, error) {
	seg := sp.segs[0]
	if sp.active != nil && len(sp.segs) == 1 {
		if err := sp.active.Close(); err != nil {
			return nil, fmt.Errorf("spool: close segment: %w", err)
		}
		sp.active = nil
	}
	var out []*record
	for _, r := range seg.recs {
		if !r.done {
			r.done = true
			out = append(out, r)
			sp.batches--
			sp.samples -= r.samples
		}
	}
	seg.live = 0
	return out, sp.remove(seg)
}

// remove deletes a segment whose records are all done.
func (sp *spool) remove(seg *segment) error {
	for i, s := range sp.segs {
		if s == seg {
			if sp.active != nil && i == len(sp.segs)-1 {
				if err := sp.active.Close(); err != nil {
					return fmt.Errorf("spool: close segment: %w", err)
				}
				sp.active = nil
			}
			sp.segs = append(sp.segs[:i], sp.segs[i+1:]...)
			sp.bytes -= seg.size
			if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("spool: %w", err)
			}
			return nil
		}
	}
	return nil
}

// head is the oldest record not done, or nil.
func (sp *spool) head() *record {
	for _, seg := range sp.segs {
		if seg.live == 0 {
			continue
		}
		for _, r := range seg.recs {
			if !r.done {
				return r
			}
		}
	}
	return nil
}

// read returns a record's payload, checking its frame again.
func (sp *spool) read(r *record) ([]byte, error) {
	f, err := os.Open(r.seg.path)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	b := make([]byte, r.size)
	if _, err := f.ReadAt(b, r.off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("spool: read %s at %d: %w", r.seg.path, r.off, err)
	}
	if _, why := readFrame(b); why != "" {
		return nil, fmt.Errorf("spool: %s at offset %d: %s", r.seg.path, r.off, why)
	}
	return b[recordHeader:], nil
}

// done marks the record of seq done, if it is spooled, and deletes its segment once all of the
// segment's records are done. It reports whether the record was there.
func (sp *spool) done(seq uint64) (bool, error) {
	for _, seg := range sp.segs {
		for _, r := range seg.recs {
			if r.seq != seq || r.done {
				continue
			}
			r.done = true
			seg.live--
			sp.batches--
			sp.samples -= r.samples
			if seg.live == 0 {
				return true, sp.remove(seg)
			}
			return true, nil
		}
	}
	return false, nil
}

func (sp *spool) close() error { return sp.closeActive() }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync %s: %w", dir, err)
	}
	return nil
}
