package slurm

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover-hpc/drover/internal/hostlist"
)

// Version is a Slurm release, such as 22.05.8.
type Version struct {
	Major, Minor, Micro int
	Release             string // as Slurm prints it, "22.05.8"; may be empty
}

// String is the release as Slurm writes it: 22.05.8.
func (v Version) String() string {
	if v.Release != "" {
		return v.Release
	}
	return fmt.Sprintf("%d.%02d.%d", v.Major, v.Minor, v.Micro)
}

// AtLeast reports whether v is major.minor or later.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// ParseVersion reads "22.05.8" (also "22.05"); anything after the numbers, as in "23.02.0-0rc1",
// is kept in Release only.
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("slurm version %q: want major.minor[.micro]", s)
	}
	var nums [3]int
	for i, p := range parts {
		end := 0
		for end < len(p) && p[end] >= '0' && p[end] <= '9' {
			end++
		}
		if end == 0 {
			return Version{}, fmt.Errorf("slurm version %q: %q is not a number", s, p)
		}
		nums[i], _ = strconv.Atoi(p[:end])
	}
	return Version{Major: nums[0], Minor: nums[1], Micro: nums[2], Release: s}, nil
}

// PingResult is the answer to a ping: the Slurm version and each configured slurmctld.
type PingResult struct {
	Version     Version
	Controllers []Controller
}

// Controller is one slurmctld as a ping sees it.
type Controller struct {
	Host string
	Mode string // primary, backup1…
	Up   bool
}

// Up reports whether at least one slurmctld answered.
func (p PingResult) Up() bool {
	return slices.ContainsFunc(p.Controllers, func(c Controller) bool { return c.Up })
}

// NodeState is a node's base state, upper case as scontrol prints it: IDLE, ALLOCATED, MIXED,
// DOWN, FUTURE, ERROR, UNKNOWN. Drain, power saving and the like are flags (Node.Flags).
type NodeState string

// Base node states.
const (
	NodeIdle      NodeState = "IDLE"
	NodeAllocated NodeState = "ALLOCATED"
	NodeMixed     NodeState = "MIXED"
	NodeDown      NodeState = "DOWN"
	NodeFuture    NodeState = "FUTURE"
	NodeError     NodeState = "ERROR"
	NodeUnknown   NodeState = "UNKNOWN"
)

// Node flags drover looks at (Node.Flags holds every flag Slurm reports, upper case).
const (
	FlagDrain         = "DRAIN"
	FlagNotResponding = "NOT_RESPONDING"
	FlagCloud         = "CLOUD"
	FlagPoweredDown   = "POWERED_DOWN"
	FlagPoweringUp    = "POWERING_UP"
	FlagPoweringDown  = "POWERING_DOWN"
	FlagCompleting    = "COMPLETING"
)

// Node is one Slurm node.
type Node struct {
	Name     string
	Hostname string // NodeHostname
	Address  string // NodeAddr
	Port     int    // slurmd's port
	State    NodeState
	Flags    []string // DRAIN, NOT_RESPONDING, CLOUD, POWERED_DOWN…

	Reason          string // why it is drained or down
	ReasonSetBy     string
	ReasonChangedAt time.Time // zero when never set

	CPUs      int
	AllocCPUs int
	IdleCPUs  int
	// CPULoad is the 1-minute load average slurmd last reported.
	CPULoad float64

	RealMemory  int64 // bytes configured (RealMemory)
	AllocMemory int64 // bytes allocated to jobs
	FreeMemory  int64 // bytes free as slurmd last saw it

	Weight         int
	Partitions     []string
	Features       []string
	ActiveFeatures []string

	BootTime        time.Time
	SlurmdStartTime time.Time
	LastBusy        time.Time
	SlurmdVersion   string
}

// Has reports whether the node carries flag (case-insensitive).
func (n Node) Has(flag string) bool {
	return slices.ContainsFunc(n.Flags, func(f string) bool { return strings.EqualFold(f, flag) })
}

// Drained reports whether the node is drained or draining.
func (n Node) Drained() bool { return n.Has(FlagDrain) }

// Responding reports whether slurmd answers slurmctld.
func (n Node) Responding() bool { return !n.Has(FlagNotResponding) && n.State != NodeDown }

// Partition is one Slurm partition.
type Partition struct {
	Name         string
	Nodes        string // hostlist expression, "n[1-3],vn[1-2]"; NodeNames expands it
	State        string // UP, DOWN, DRAIN, INACTIVE
	Default      bool
	TotalNodes   int
	TotalCPUs    int
	PriorityTier int
	MaxTime      time.Duration // 0: unlimited
	Flags        []string
}

// NodeNames expands Nodes into single names.
func (p Partition) NodeNames() ([]string, error) { return nodeNames(p.Nodes) }

// JobState is a job's base state, as Slurm prints it.
type JobState string

// Job states.
const (
	JobPending     JobState = "PENDING"
	JobRunning     JobState = "RUNNING"
	JobSuspended   JobState = "SUSPENDED"
	JobCompleting  JobState = "COMPLETING"
	JobCompleted   JobState = "COMPLETED"
	JobCancelled   JobState = "CANCELLED"
	JobFailed      JobState = "FAILED"
	JobTimeout     JobState = "TIMEOUT"
	JobNodeFail    JobState = "NODE_FAIL"
	JobPreempted   JobState = "PREEMPTED"
	JobBootFail    JobState = "BOOT_FAIL"
	JobDeadline    JobState = "DEADLINE"
	JobOutOfMemory JobState = "OUT_OF_MEMORY"
)

// Finished reports whether the job has ended, whatever the outcome: one of the terminal states.
// Anything else — PENDING, RUNNING, CONFIGURING (its nodes are booting), COMPLETING, REQUEUED,
// SUSPENDED, or a state this list does not know — is not finished.
func (s JobState) Finished() bool {
	switch s {
	case JobCompleted, JobCancelled, JobFailed, JobTimeout, JobNodeFail, JobPreempted, JobBootFail, JobDeadline, JobOutOfMemory:
		return true
	}
	return false
}

// Job is one Slurm job.
type Job struct {
	ID        uint32
	Name      string
	User      string
	UserID    int
	Partition string
	State     JobState
	Reason    string // state_reason: None, Priority, Resources, JobHeldUser, JobHeldAdmin…
	// Priority 0 means held.
	Priority int64

	Nodes         string // allocated nodes, hostlist expression
	BatchHost     string
	RequiredNodes string
	ExcludedNodes string
	NodeCount     int
	CPUs          int

	SubmitTime   time.Time
	EligibleTime time.Time
	StartTime    time.Time // expected start while pending, when known
	EndTime      time.Time
	TimeLimit    time.Duration // 0: none

	// Comment is the job's --comment, where users put drover hints (drover:spread…);
	// Constraint its --constraint feature expression.
	Comment    string
	Constraint string
	// MemoryPerNode is --mem in MiB, CPUsPerTask --cpus-per-task; 0 when not given.
	MemoryPerNode int64
	CPUsPerTask   int

	// ExitCode is the script's exit status, Signal the signal that ended it (0: none).
	ExitCode int
	Signal   int

	Command string
	WorkDir string
	StdOut  string
	StdErr  string
}

// Held reports whether the job waits for a release (priority 0, held by a user or an admin).
func (j Job) Held() bool {
	return j.State == JobPending && (j.Priority == 0 || strings.HasPrefix(j.Reason, "JobHeld"))
}

// NodeNames expands Nodes into single names.
func (j Job) NodeNames() ([]string, error) { return nodeNames(j.Nodes) }

// nodeNames expands a hostlist field; Slurm leaves it empty when there are no nodes.
func nodeNames(expr string) ([]string, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	return hostlist.Expand(expr)
}

// SubmitRequest is a batch job to submit.
type SubmitRequest struct {
	Name      string
	Partition string
	// Script is the batch script; it must start with "#!".
	Script string
	// Environment is the job's whole environment (REST does not pass the caller's); when empty,
	// PATH=/usr/bin:/bin is sent, as 22.05 refuses a job without one.
	Environment map[string]string
	WorkDir     string // Slurm's default when empty
	StdOut      string // file pattern, %j = job id; Slurm's default when empty
	StdErr      string
	Nodes       int           // node count; 0: Slurm's default (1)
	Tasks       int           // 0: Slurm's default
	CPUsPerTask int           // 0: Slurm's default
	NodeList    string        // run on exactly these nodes (hostlist)
	TimeLimit   time.Duration // rounded up to whole minutes; 0: partition default
	Hold        bool          // submit held (priority 0); Release starts it
	Comment     string        // --comment, e.g. drover hints ("drover:spread")
}

// SubmitResult is Slurm's answer to a submission.
type SubmitResult struct {
	JobID       uint32
	StepID      string
	UserMessage string // job_submit plugin message, if any
	// Warnings are errors Slurm sent alongside a successful submission, such as
	// 2042 "Job is in held state, pending scheduler release" for Hold.
	Warnings []SlurmError
}
