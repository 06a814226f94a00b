package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestProcFigures(t *testing.T) {
	// burn some CPU so that utime+stime is at least one tick
	start := time.Now()
	x := 0
	for time.Since(start) < 50*time.Millisecond {
		x++
	}
	cpu, hwm, anon, err := procFigures(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if cpu <= 0 || hwm <= 0 || anon <= 0 || anon > hwm {
		t.Errorf("cpu %v, peak RSS %d KiB, anonymous %d KiB: want all positive, anonymous within the peak", cpu, hwm, anon)
	}
	if _, _, _, err := procFigures(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// The child runs its cycles, says so after each, and waits for its input to close.
func TestBenchAgentChild(t *testing.T) {
	var out bytes.Buffer
	if err := benchAgentChild(context.Background(), 2, strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"collectors loadavg,cpu,meminfo,pressure", "cycle 1 samples ", "cycle 2 samples "} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}
}

// smaps mappings are split by path: the executable's, shared libraries', the rest; a file
// mapping's copied-on-write (Anonymous) pages count as the rest.
func TestParseRSSParts(t *testing.T) {
	const smaps = `00400000-0040d000 r--p 00000000 08:01 123 /usr/bin/drover
Size:                 52 kB
Rss:                  52 kB
Anonymous:             0 kB
0128b000-0131b000 rw-p 00e8a000 08:01 123 /usr/bin/drover
Rss:                 476 kB
Anonymous:            96 kB
7f0000000000-7f0000100000 r-xp 00000000 08:01 77 /usr/lib/x86_64-linux-gnu/libvirt.so.0.9000.0
Rss:                 876 kB
Anonymous:             0 kB
7f0000200000-7f0000210000 rw-p 00100000 08:01 77 /usr/lib/x86_64-linux-gnu/libvirt.so.0.9000.0
Rss:                  64 kB
Anonymous:            60 kB
7f0000300000-7f0000400000 r-xp 00000000 08:01 78 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1336 kB
Anonymous:             0 kB
c000000000-c004000000 rw-p 00000000 00:00 0 
Rss:                3304 kB
Anonymous:          3304 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  20 kB
Anonymous:            20 kB
VmFlags: rd wr mr mw me ac
`
	p, err := parseRSSParts(strings.NewReader(smaps), "/usr/bin/drover")
	if err != nil {
		t.Fatal(err)
	}
	want := rssParts{Binary: 52 + 476 - 96, Libraries: 876 + 64 - 60 + 1336, Libs: 2, Other: 96 + 60 + 3304 + 20}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	if _, err := parseRSSParts(strings.NewReader("00400000-0040d000 r--p 0 0 1 /x\nRss: many kB\n"), "/x"); err == nil || !strings.Contains(err.Error(), `Rss: "many"`) {
		t.Errorf("a bad number: error %v, want one naming Rss and the text", err)
	}
	// this process: its parts add up to its resident set
	own, err := readRSSParts(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if own.Binary <= 0 || own.Other <= 0 {
		t.Errorf("this test binary: %+v, want executable and anonymous pages", own)
	}
}
