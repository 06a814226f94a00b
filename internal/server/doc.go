// Package server is `drover server`: the one process that decides. It serves an authenticated
// HTTP API to the Slurm hooks and the CLI (placement decisions, the fleet view), keeps an
// in-memory view of the hypervisors refreshed from PostgreSQL (the agents' newest KPIs and
// health, refreshed at once when a health event is NOTIFYed), and elects a leader through a
// PostgreSQL advisory lock so that of several servers only one ever acts.
//
// It owns no SQL (internal/store does) and no placement logic (scheduler/ does); migrations are
// executed by migrate/.
package server
