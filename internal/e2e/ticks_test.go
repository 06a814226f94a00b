//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tick is one line a job task sent: "tick JOB TASK N".
type tick struct {
	job, task, n int
	at           time.Time // when the listener received it
}

// listener collects tick lines from jobs running in vnodes, stamped with the host's clock.
type listener struct {
	ln    net.Listener
	mu    sync.Mutex
	ticks []tick
	done  map[string]string // "job.task" -> the task's final line
}

func listen(t *testing.T, addr string) *listener {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("listen on the testbed network: %v", err)
	}
	l := &listener{ln: ln, done: map[string]string{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.serve(c)
		}
	}()
	return l
}

func (l *listener) serve(c net.Conn) {
	defer c.Close()
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		now := time.Now()
		f := strings.Fields(sc.Text())
		l.mu.Lock()
		switch {
		case len(f) >= 4 && f[0] == "tick":
			job, _ := strconv.Atoi(f[1])
			task, _ := strconv.Atoi(f[2])
			n, _ := strconv.Atoi(f[3])
			l.ticks = append(l.ticks, tick{job: job, task: task, n: n, at: now})
		case len(f) >= 3 && f[0] == "done":
			l.done[f[1]+"."+f[2]] = sc.Text()
		}
		l.mu.Unlock()
	}
}

func (l *listener) addr() string { return l.ln.Addr().String() }

// of returns the ticks of one task, in arrival order.
func (l *listener) of(job, task int) []tick {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []tick
	for _, t := range l.ticks {
		if t.job == job && t.task == task {
			out = append(out, t)
		}
	}
	return out
}

// waitTick blocks until task has sent tick n (bounded).
func (l *listener) waitTick(t *testing.T, job, task, n int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ts := l.of(job, task)
		if len(ts) > 0 && ts[len(ts)-1].n >= n {
			return ts[len(ts)-1].at
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %d task %d: no tick %d within %v (got %d ticks)", job, task, n, timeout, len(l.of(job, task)))
	return time.Time{}
}

// check verifies a task sent 1..want in order and returns the largest gap between arrivals.
func (l *listener) check(job, task, want int) (time.Duration, error) {
	ts := l.of(job, task)
	if len(ts) != want {
		return 0, fmt.Errorf("job %d task %d: %d ticks, want %d", job, task, len(ts), want)
	}
	var gap time.Duration
	for i, tk := range ts {
		if tk.n != i+1 {
			return 0, fmt.Errorf("job %d task %d: tick %d arrived as number %d (out of order or lost)", job, task, tk.n, i+1)
		}
		if i > 0 {
			gap = max(gap, tk.at.Sub(ts[i-1].at))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if d, ok := l.done[fmt.Sprintf("%d.%d", job, task)]; !ok || !strings.HasSuffix(d, " 0") {
		return gap, fmt.Errorf("job %d task %d: final line %q, want 0 failed writes", job, task, d)
	}
	return gap, nil
}

// tickScript is a bash loop sending n ticks, one a second, over one long-lived TCP connection.
func tickScript(addr string, n int) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf(`task=${SLURM_PROCID:-0}
exec 3<>/dev/tcp/%s/%s || exit 99
fail=0
for i in $(seq 1 %d); do echo "tick $SLURM_JOB_ID $task $i $(hostname)" >&3 || fail=$((fail+1)); sleep 1; done
echo "done $SLURM_JOB_ID $task $fail" >&3
exit $fail
`, host, port, n)
}
