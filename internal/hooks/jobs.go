package hooks

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/drover-hpc/drover/internal/hostlist"
	"github.com/drover-hpc/drover/internal/slurm"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/scheduler"
)

// JobSource looks a job up in Slurm, to learn what the hook environment does not carry (time
// limit, CPUs, final state).
type JobSource interface {
	Job(ctx context.Context, id uint32) (slurm.Job, error)
}

// JobFromEnv reads the job slurmctld describes to PrologSlurmctld / EpilogSlurmctld. A missing or
// malformed SLURM_JOB_ID is an error naming it; other fields are taken as they come.
func JobFromEnv(getenv func(string) string) (store.Job, error) {
	raw := strings.TrimSpace(getenv("SLURM_JOB_ID"))
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 || id > 1<<32-1 {
		return store.Job{}, fmt.Errorf("SLURM_JOB_ID %q is not a Slurm job id (is this run by slurmctld as PrologSlurmctld/EpilogSlurmctld?)", raw)
	}
	j := store.Job{
		ID:          id,
		Name:        getenv("SLURM_JOB_NAME"),
		User:        getenv("SLURM_JOB_USER"),
		Account:     getenv("SLURM_JOB_ACCOUNT"),
		Partition:   getenv("SLURM_JOB_PARTITION"),
		Constraints: getenv("SLURM_JOB_CONSTRAINTS"),
	}
	if nl := strings.TrimSpace(getenv("SLURM_JOB_NODELIST")); nl != "" && nl != "(null)" {
		if j.Nodes, err = hostlist.Expand(nl); err != nil {
			return store.Job{}, fmt.Errorf("SLURM_JOB_NODELIST: %w", err)
		}
	}
	// EpilogSlurmctld: "exit:signal" in SLURM_JOB_EXIT_CODE2, the wait() status in SLURM_JOB_EXIT_CODE
	sig := -1
	if ec := strings.TrimSpace(getenv("SLURM_JOB_EXIT_CODE2")); ec != "" {
		code, signal, _ := strings.Cut(ec, ":")
		if c, err := strconv.Atoi(code); err == nil {
			j.ExitCode = &c
		}
		if s, err := strconv.Atoi(signal); err == nil {
			sig = s
		}
	} else if ec := strings.TrimSpace(getenv("SLURM_JOB_EXIT_CODE")); ec != "" {
		if st, err := strconv.Atoi(ec); err == nil {
			c, s := st>>8, st&0x7f
			j.ExitCode, sig = &c, s
		}
	}
	if j.ExitCode != nil {
		j.State = endState(*j.ExitCode, sig)
	}
	return j, nil
}

// endState names how a job ended from its exit code and signal, for when Slurm has not settled
// the state yet (EpilogSlurmctld runs while the job is still COMPLETING): scancel and time limits
// end a job with SIGTERM or SIGKILL.
func endState(code, sig int) string {
	switch {
	case sig == 15 || sig == 9:
		return "cancelled"
	case sig > 0 || code != 0:
		return "failed"
	default:
		return "completed"
	}
}

// enrich adds what only Slurm knows. Failing to ask is not fatal: the record is made without it.
func (h *Hooks) enrich(ctx context.Context, src JobSource, j *store.Job) {
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	sj, err := src.Job(ctx, uint32(j.ID))
	if err != nil {
		h.Log.Warn().Int64("job", j.ID).Err(err).Msg("could not read the job from slurmrestd; recording what the hook environment says")
		return
	}
	if sj.TimeLimit > 0 {
		tl := sj.TimeLimit
		j.TimeLimit = &tl
	}
	if sj.CPUs > 0 {
		c := sj.CPUs
		j.CPUs = &c
	}
	if !sj.SubmitTime.IsZero() {
		t := sj.SubmitTime
		j.SubmittedAt = &t
	}
	if sj.State != "" && sj.State.Finished() {
		j.State = strings.ToLower(string(sj.State))
	}
	if sj.MemoryPerNode > 0 {
		m := sj.MemoryPerNode
		j.MemoryMiB = &m
	}
	if sj.Constraint != "" {
		j.Constraints = sj.Constraint
	}
	// the control loop reads jobs.hints: drover:no-migrate keeps the job's vnodes where they are
	hints, err := scheduler.ParseHints(sj.Comment)
	if err != nil {
		h.Log.Warn().Int64("job", j.ID).Err(err).Msg("job comment: hints left out")
		return
	}
	j.Hints = scheduler.HintWords(hints)
}

// JobStart records a job that slurmctld is starting.
func (h *Hooks) JobStart(ctx context.Context, src JobSource, j store.Job) error {
	h.enrich(ctx, src, &j)
	if err := h.Store.JobStarted(ctx, j); err != nil {
		return err
	}
	// a vnode that runs a job has booted: slurmd registered with slurmctld
	var vnodes []string
	for _, n := range j.Nodes {
		if h.Catalog.Has(n) {
			vnodes = append(vnodes, n)
		}
	}
	if len(vnodes) > 0 {
		if err := h.Store.VnodesRunning(ctx, vnodes, j.ID); err != nil {
			return err
		}
	}
	h.Log.Info().Int64("job", j.ID).Str("user", j.User).Strs("nodes", j.Nodes).Msg("job started")
	return nil
}

// JobEnd records a job's end, its state and exit code.
func (h *Hooks) JobEnd(ctx context.Context, src JobSource, j store.Job) error {
	h.enrich(ctx, src, &j)
	if j.State == "" {
		j.State = "unknown" // no exit code in the environment and no final state from Slurm
	}
	if err := h.Store.JobEnded(ctx, j); err != nil {
		return err
	}
	h.Log.Info().Int64("job", j.ID).Str("state", j.State).Msg("job ended")
	return nil
}
