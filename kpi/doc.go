// Package kpi collects hypervisor key performance indicators (procfs, sysfs hwmon/RAPL, IPMI,
// libvirt per-VM statistics), ingests them into PostgreSQL in batches, and answers queries on them.
// Collectors follow node_exporter's shape: one file per collector, reading separate from parsing.
package kpi
