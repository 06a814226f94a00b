package health_test

import (
	"fmt"
	"time"

	"github.com/drover-hpc/drover/health"
)

// The agent keeps one Monitor per (host, sensor) and feeds it every reading; the events go to
// the server. Here a CPU heats up at 0.2 °C/s from 60 °C, past its warning bound 80 towards its
// critical bound 90, which it reaches after 150 s.
func ExampleMonitor() {
	table, err := health.Parse("thresholds.conf", []byte(`
# sensor   low_crit low_warn high_warn high_crit
CPU Temp   5        10       80        90
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	th, _ := table.Lookup("CPU Temp")
	m, err := health.NewMonitor("hv1", th, health.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 160 {
		v := 60 + float64(i)/5
		for _, ev := range m.Observe(start.Add(time.Duration(i)*time.Second), v) {
			fmt.Printf("%4s %-10s %s\n", ev.At.Sub(start), ev.Kind, ev.Message)
		}
	}
	// Output:
	//  10s prediction hv1 "CPU Temp": 62 now, +0.2 per second, expected to reach the critical bound 90 in 2m20s (between 2m20s and 2m20s, confidence 1.00)
	// 1m40s state      hv1 "CPU Temp": ok -> warning: 80 reached the warning bound 80
	// 2m30s state      hv1 "CPU Temp": warning -> critical: 90 reached the critical bound 90
}

// A thresholds file with a mistake: every mistake is reported with its file and line.
func ExampleParseLines() {
	_, err := health.ParseLines("/etc/drover/thresholds.conf", []byte(`CPU Temp 10 85
System Temp 5 10 95 90
Fan 1 300 -
`))
	fmt.Println(err)
	// Output:
	// /etc/drover/thresholds.conf:2: sensor "System Temp": warning high 95 is not below critical high 90 (want critical low <= warning low < warning high <= critical high)
	// /etc/drover/thresholds.conf:3: want "<sensor> <low> <high>" or "<sensor> <low_crit> <low_warn> <high_warn> <high_crit>": 3 numbers at the end of the line; if the sensor name ends in a number, quote it: "Fan 1" 300 -
}
