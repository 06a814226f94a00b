// Package bmc is drover's IPMI client: it talks to a hypervisor's baseboard management controller
// and reads its threshold sensors (temperatures, fans, voltages, power) in base units, with the
// BMC's own verdict on each reading and the thresholds behind that verdict.
//
// It owns the IPMI session (RMCP+ "lanplus" by default, IPMI 1.5 "lan", or the in-band "open"
// interface /dev/ipmi0), the Sensor Data Record cache and the conversion of raw readings. It
// must not decide what a reading means for drover: health scoring and migration decisions belong
// to other packages, which receive []Sensor.
//
// The code is split the way drover's collectors are: sdr.go and convert.go are pure functions
// from bytes and decoded responses to values (unit-tested on literal input); client.go and
// sensors.go do the I/O through github.com/bougou/go-ipmi.
//
// Secrets: the password comes from config.BMC (Password or PasswordFile) and is handed to the
// IPMI library only; it never appears in an error or a log line of this package.
package bmc
