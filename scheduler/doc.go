// Package scheduler plans where vnodes go: initial placement of a vnode Slurm resumes, and
// rebalancing or evacuation moves while jobs run. It is a pipeline of feasibility filters (each
// dropping a host with a reason code) and scorers (each in [0, 100], weighted and summed), and it
// records why every host was kept or dropped.
//
// It only plans: it returns Plans and never calls libvirt, Slurm or the database. Executors in
// migrate/ and the server apply plans and own the safety limits.
package scheduler
