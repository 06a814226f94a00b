package virt

// convergence watches a pre-copy migration's passes and says when it cannot converge: memory is
// dirtied about as fast as it is sent, or the data left does not shrink from pass to pass. Then
// only post-copy (or pausing the guest) can finish it within the allowed downtime.
type convergence struct {
	// remaining[i] is the data left at the start of pass i (first reading of that pass)
	remaining map[uint64]uint64
	hot       int // consecutive readings with the dirty rate near the transfer rate
}

// Thresholds of stuck: the dirty rate at or above dirtyShare of the transfer rate for hotReadings
// readings in a row, or after minPasses passes the data left shrunk by less than shrinkShare over
// the last two passes.
const (
	dirtyShare  = 0.9
	hotReadings = 4
	minPasses   = 4
	shrinkShare = 0.05
)

func newConvergence() *convergence { return &convergence{remaining: map[uint64]uint64{}} }

// stuck takes one progress reading and its page size (bytes; 0 = 4 KiB) and reports whether the
// migration cannot converge, with why.
func (c *convergence) stuck(p Progress, pageSize uint64) (bool, string) {
	if pageSize == 0 {
		pageSize = 4096
	}
	if _, seen := c.remaining[p.Iteration]; !seen && p.Iteration > 0 {
		c.remaining[p.Iteration] = p.DataRemaining
	}
	dirty := float64(p.DirtyPages) * float64(pageSize)
	if p.BytesPerSec > 0 && p.Iteration >= 2 && dirty >= dirtyShare*float64(p.BytesPerSec) {
		c.hot++
	} else {
		c.hot = 0
	}
	if c.hot >= hotReadings {
		return true, "memory is dirtied about as fast as it is sent"
	}
	if p.Iteration >= minPasses {
		now, ok1 := c.remaining[p.Iteration]
		before, ok2 := c.remaining[p.Iteration-2]
		if ok1 && ok2 && before > 0 && float64(now) > (1-shrinkShare)*float64(before) {
			return true, "the data left no longer shrinks from pass to pass"
		}
	}
	return false, ""
}
