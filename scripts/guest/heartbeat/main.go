// Command heartbeat is the payload of drover's disk-less test guest (scripts/guest/build.sh).
//
// It runs as the guest's last process, started by the initramfs /init, and writes one line per
// second to the serial console:
//
//	HB <n> up=<seconds since start> dirtied=<MiB written so far> mb=<dirty_mb> rate=<dirty_rate>
//
// Tests read these lines from the domain's serial log: a guest that keeps printing them is alive.
// n counts lines, one per second of guest time; a pause (for example a live migration's
// switch-over) shows as a longer host-side gap between two lines, never as a burst of catch-up lines.
//
// Two kernel command-line parameters shape its memory traffic:
//
//	dirty_mb=N    size of the working set in MiB (default 0: heartbeats only)
//	dirty_rate=R  MiB of that set rewritten per second, round robin (default 0: fill once, then idle)
//
// The same keys may be given as arguments (dirty_mb=64) to try it on a workstation.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	mib      = 1 << 20
	pageSize = 4096
	// tick is how often the dirtier wakes up to catch up with its rate.
	tick = 10 * time.Millisecond
)

// params are the knobs read from the kernel command line.
type params struct {
	dirtyMB   int // working set, MiB
	dirtyRate int // MiB rewritten per second
}

// parseParams reads dirty_mb and dirty_rate from a command line such as /proc/cmdline. Later
// occurrences win, as they do for the kernel; malformed or negative values are reported and ignored.
func parseParams(cmdline string) (params, []string) {
	var p params
	var warnings []string
	for _, field := range strings.Fields(cmdline) {
		key, val, ok := strings.Cut(field, "=")
		if !ok {
			continue
		}
		var dst *int
		switch key {
		case "dirty_mb":
			dst = &p.dirtyMB
		case "dirty_rate":
			dst = &p.dirtyRate
		default:
			continue
		}
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			warnings = append(warnings, fmt.Sprintf("ignoring %s: want a non-negative integer", field))
			continue
		}
		*dst = n
	}
	return p, warnings
}

// availableMB is MemAvailable from /proc/meminfo in MiB, or -1 when unknown.
func availableMB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.Atoi(fields[1])
			if err != nil {
				return -1
			}
			return kb / 1024
		}
	}
	return -1
}

// dirtier rewrites its buffer one word per page, so every write dirties a whole page.
type dirtier struct {
	buf     []byte
	next    int          // offset of the next page to write
	pass    byte         // changes on every full pass so rewritten pages differ from before
	written atomic.Int64 // bytes of pages dirtied so far
}

// fill writes every page once, so the whole working set is resident and non-zero.
func (d *dirtier) fill() {
	for off := 0; off < len(d.buf); off += pageSize {
		d.buf[off] = byte(off/pageSize) | 1
	}
	d.written.Add(int64(len(d.buf)))
}

// dirty rewrites n bytes' worth of pages, wrapping around the buffer.
func (d *dirtier) dirty(n int) {
	d.written.Add(int64(n))
	for ; n > 0; n -= pageSize {
		d.buf[d.next] ^= d.pass | 1
		d.next += pageSize
		if d.next >= len(d.buf) {
			d.next = 0
			d.pass++
		}
	}
}

// run keeps the dirtying rate at rate MiB/s by topping up to the target every tick.
func (d *dirtier) run(rate int) {
	start := time.Now()
	var done int64
	for range time.Tick(tick) {
		target := int64(time.Since(start).Seconds() * float64(rate) * mib)
		if n := target - done; n >= pageSize {
			n -= n % pageSize
			d.dirty(int(n))
			done += n
		}
	}
}

func main() {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		fmt.Printf("heartbeat: cannot read /proc/cmdline: %v\n", err)
	}
	p, warnings := parseParams(string(cmdline) + " " + strings.Join(os.Args[1:], " "))
	for _, w := range warnings {
		fmt.Println("heartbeat:", w)
	}
	if avail := availableMB(); avail > 0 && p.dirtyMB > avail*4/5 {
		fmt.Printf("heartbeat: dirty_mb=%d does not fit in %d MiB available; using %d\n", p.dirtyMB, avail, avail*4/5)
		p.dirtyMB = avail * 4 / 5
	}

	start := time.Now()
	d := &dirtier{buf: make([]byte, p.dirtyMB*mib)}
	d.fill()
	fmt.Printf("HEARTBEAT start mb=%d rate=%d filled in %.2fs\n", p.dirtyMB, p.dirtyRate, time.Since(start).Seconds())
	if p.dirtyMB > 0 && p.dirtyRate > 0 {
		go d.run(p.dirtyRate)
	}

	next := time.Now().Add(time.Second)
	for n := 1; ; n++ {
		time.Sleep(time.Until(next))
		fmt.Printf("HB %d up=%.2f dirtied=%dMiB mb=%d rate=%d\n",
			n, time.Since(start).Seconds(), d.written.Load()/mib, p.dirtyMB, p.dirtyRate)
		// keep a one-second rhythm, but after a pause start again from now instead of catching up
		if next = next.Add(time.Second); time.Until(next) <= 0 {
			next = time.Now().Add(time.Second)
		}
	}
}
