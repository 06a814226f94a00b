// Package slurm is drover's only way to talk to Slurm.
//
// It owns two things:
//
//   - Client: reading the cluster (ping, nodes, partitions, jobs) and controlling jobs (submit,
//     hold, release, cancel) through slurmrestd. REST speaks OpenAPI v0.0.38 (Slurm 22.05); a
//     later Slurm (v0.0.39 and up) gets its own adapter behind the same interface, chosen by New
//     from config.Slurm.APIVersion. The wire format stays in this package: callers see Node, Job,
//     Partition… in Go's naming and base units (bytes, time.Time, time.Duration).
//   - NodeUpdater: changing nodes (drain, resume, weight, address). The 22.05 REST API cannot
//     update nodes, so Scontrol runs `scontrol update` with SLURM_CONF set and SLURM_JWT removed
//     from its environment (with SLURM_JWT set, scontrol would act as the token's user).
//
// Errors: errors.Is(err, ErrUnauthorized) when Slurm rejects the credentials (the message says
// how to get a new token), ErrNotFound for an unknown node, job or partition, ErrUnavailable
// when slurmrestd or slurmctld cannot be reached, ErrMalformed for an answer that is not the
// JSON expected; anything else Slurm refuses is an *APIError (or *CommandError from scontrol),
// reached with errors.As. The JWT never appears in an error, a log line or a process argument.
//
// It must not decide anything: which node to drain or which job to hold belongs to the
// scheduler and its executor. It keeps no state besides the token it was given.
package slurm
