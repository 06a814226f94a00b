// Package agent is drover's per-hypervisor collector, `drover agent`: it reads the host's KPIs
// and health sensors on two schedules, turns sensor readings into health events, and hands
// both to the ingest Shipper, which delivers them to PostgreSQL (spooling to disk while the
// database is away).
//
//	ipmi, hwmon, thermal ──(health_interval, 1 s)──┐
//	                                               ├─ samples ─┬─ health.Monitor per sensor ─ events
//	procfs, rapl, libvirt ──(interval, 10 s)───────┘           │
//	  (or one node_exporter scrape)                            └─ ingest.Batch{samples, events} ─ Shipper
//
// The two schedules run on their own goroutines, so a slow BMC never delays the procfs and
// libvirt readings; kpi.Registry bounds every collector with its own timeout. A cycle that runs
// past its interval makes the schedule skip ticks rather than pile cycles up.
//
// Every sensor that has a threshold — from the thresholds file, else from its BMC — gets one
// health.Monitor. The events a reading causes are shipped in the same batch as the reading.
// Bad readings (*kpi.SampleError) are logged with host and sensor and counted, never shipped;
// a sensor that vanishes or becomes unavailable tells its monitor there is no reading.
//
// The agent only reads the host and writes through the Shipper: it never changes VMs, Slurm or
// the hypervisors table, and it decides nothing about placements (scheduler/ and the server do).
package agent
