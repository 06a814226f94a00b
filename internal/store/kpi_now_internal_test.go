package store

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// The binary decoders of HostsNow on PostgreSQL's wire formats.
func TestRawDecoders(t *testing.T) {
	// 2026-03-01T12:00:00.5Z is 9,556 days and 12.5 h after 2000-01-01: 825,681,600.5 s.
	b := binary.BigEndian.AppendUint64(nil, 825681600500000)
	if got := rawTime(b); !got.Valid || !got.Time.Equal(time.Date(2026, 3, 1, 12, 0, 0, 5e8, time.UTC)) {
		t.Errorf("rawTime = %v", got)
	}
	if got := rawTime(binary.BigEndian.AppendUint64(nil, math.MaxInt64)); got.Valid {
		t.Errorf("infinity = %v, want NULL", got)
	}
	if got := rawTime(nil); got.Valid {
		t.Errorf("NULL time = %v", got)
	}
	if got := rawFloat(binary.BigEndian.AppendUint64(nil, math.Float64bits(-2.5))); !got.Valid || got.Float64 != -2.5 {
		t.Errorf("rawFloat = %v", got)
	}
	if got := rawFloat(nil); got.Valid {
		t.Errorf("NULL float = %v", got)
	}
	if got := rawText([]byte{}); !got.Valid || got.String != "" {
		t.Errorf("empty text = %v, want valid ''", got)
	}
	if got := rawText(nil); got.Valid {
		t.Errorf("NULL text = %v", got)
	}
}
