package slurm

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// The v0.0.38 wire format, as slurmrestd 22.05 really sends it (not as its OpenAPI document
// says): version numbers are integers (declared strings), error numbers come as error_code,
// errno or error_number, nulls arrive in fields declared non-nullable, and fields appear that the
// document does not declare (encoding/json ignores those). Only the fields drover uses are here.

// flexInt is a number that may arrive as an integer, a float, a numeric string or null (zero).
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		*f = 0
		return nil
	}
	s := string(b)
	if b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			*f = 0
			return nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*f = flexInt(n)
		return nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil && n >= noValue64 {
		// 64-bit NO_VAL/INFINITE (memory fields): "not given", like the 32-bit ones
		*f = flexInt(math.MaxInt64)
		return nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > math.MaxInt64 {
		// an *UnmarshalTypeError gets the field's path from encoding/json
		return &json.UnmarshalTypeError{Value: truncate(string(b), 40), Type: reflect.TypeFor[int64]()}
	}
	*f = flexInt(x)
	return nil
}

// noValue is Slurm's NO_VAL/INFINITE range for 32-bit fields (0xfffffffe, 0xffffffff).
const noValue32 = 0xfffffffe

// noValue64 is Slurm's NO_VAL64 (INFINITE64 is one more).
const noValue64 = 0xfffffffffffffffe

type envelope38 struct {
	Meta   meta38    `json:"meta"`
	Errors []error38 `json:"errors"`
}

type meta38 struct {
	Slurm struct {
		Version struct {
			Major flexInt `json:"major"`
			Minor flexInt `json:"minor"`
			Micro flexInt `json:"micro"`
		} `json:"version"`
		Release string `json:"release"`
	} `json:"Slurm"`
}

func (m meta38) version() Version {
	v := m.Slurm.Version
	return Version{Major: int(v.Major), Minor: int(v.Minor), Micro: int(v.Micro), Release: m.Slurm.Release}
}

type error38 struct {
	ErrorCode   *flexInt `json:"error_code"`
	Errno       *flexInt `json:"errno"`
	ErrorNumber *flexInt `json:"error_number"`
	Error       string   `json:"error"`
	Description string   `json:"description"`
	Source      string   `json:"source"`
}

func (e error38) slurm() SlurmError {
	code := 0
	for _, c := range []*flexInt{e.ErrorCode, e.Errno, e.ErrorNumber} {
		if c != nil {
			code = int(*c)
			break
		}
	}
	return SlurmError{Code: code, Message: e.Error, Description: e.Description, Source: e.Source}
}

type pings38 struct {
	Pings []struct {
		Hostname string `json:"hostname"`
		Ping     string `json:"ping"`
		Mode     string `json:"mode"`
	} `json:"pings"`
}

type nodes38 struct {
	Nodes []node38 `json:"nodes"`
}

type node38 struct {
	Name            string   `json:"name"`
	Hostname        string   `json:"hostname"`
	Address         string   `json:"address"`
	Port            flexInt  `json:"port"`
	State           string   `json:"state"`
	StateFlags      []string `json:"state_flags"`
	Reason          string   `json:"reason"`
	ReasonSetBy     string   `json:"reason_set_by_user"`
	ReasonChangedAt flexInt  `json:"reason_changed_at"`
	CPUs            flexInt  `json:"cpus"`
	AllocCPUs       flexInt  `json:"alloc_cpus"`
	IdleCPUs        flexInt  `json:"idle_cpus"`
	CPULoad         flexInt  `json:"cpu_load"` // load average × 100
	RealMemory      flexInt  `json:"real_memory"`
	AllocMemory     flexInt  `json:"alloc_memory"`
	FreeMemory      flexInt  `json:"free_memory"`
	Weight          flexInt  `json:"weight"`
	Partitions      []string `json:"partitions"`
	Features        string   `json:"features"`
	ActiveFeatures  string   `json:"active_features"`
	BootTime        flexInt  `json:"boot_time"`
	SlurmdStartTime flexInt  `json:"slurmd_start_time"`
	LastBusy        flexInt  `json:"last_busy"`
	SlurmdVersion   string   `json:"slurmd_version"`
}

const mib = 1 << 20

func (n node38) node() Node {
	flags := make([]string, 0, len(n.StateFlags))
	for _, f := range n.StateFlags {
		flags = append(flags, strings.ToUpper(f))
	}
	return Node{
		Name:            n.Name,
		Hostname:        n.Hostname,
		Address:         n.Address,
		Port:            int(n.Port),
		State:           NodeState(strings.ToUpper(n.State)),
		Flags:           flags,
		Reason:          n.Reason,
		ReasonSetBy:     n.ReasonSetBy,
		ReasonChangedAt: unixTime(n.ReasonChangedAt),
		CPUs:            int(n.CPUs),
		AllocCPUs:       int(n.AllocCPUs),
		IdleCPUs:        int(n.IdleCPUs),
		CPULoad:         float64(n.CPULoad) / 100,
		RealMemory:      int64(n.RealMemory) * mib,
		AllocMemory:     int64(n.AllocMemory) * mib,
		FreeMemory:      int64(n.FreeMemory) * mib,
		Weight:          int(n.Weight),
		Partitions:      n.Partitions,
		Features:        splitList(n.Features),
		ActiveFeatures:  splitList(n.ActiveFeatures),
		BootTime:        unixTime(n.BootTime),
		SlurmdStartTime: unixTime(n.SlurmdStartTime),
		LastBusy:        unixTime(n.LastBusy),
		SlurmdVersion:   n.SlurmdVersion,
	}
}

type partitions38 struct {
	Partitions []partition38 `json:"partitions"`
}

type partition38 struct {
	Name         string   `json:"name"`
	Nodes        string   `json:"nodes"`
	State        string   `json:"state"`
	Flags        []string `json:"flags"`
	TotalNodes   flexInt  `json:"total_nodes"`
	TotalCPUs    flexInt  `json:"total_cpus"`
	PriorityTier flexInt  `json:"priority_tier"`
	MaxTimeLimit *flexInt `json:"max_time_limit"` // minutes; -1, null or NO_VAL: unlimited
}

func (p partition38) partition() Partition {
	out := Partition{
		Name:         p.Name,
		Nodes:        p.Nodes,
		State:        strings.ToUpper(p.State),
		TotalNodes:   int(p.TotalNodes),
		TotalCPUs:    int(p.TotalCPUs),
		PriorityTier: int(p.PriorityTier),
		MaxTime:      minutes(p.MaxTimeLimit),
	}
	for _, f := range p.Flags {
		if strings.EqualFold(f, "default") {
			out.Default = true
		}
		out.Flags = append(out.Flags, strings.ToUpper(f))
	}
	return out
}

type jobs38 struct {
	Jobs []job38 `json:"jobs"`
}

type job38 struct {
	JobID         flexInt  `json:"job_id"`
	Name          string   `json:"name"`
	UserName      string   `json:"user_name"`
	UserID        flexInt  `json:"user_id"`
	Partition     string   `json:"partition"`
	JobState      string   `json:"job_state"`
	StateReason   string   `json:"state_reason"`
	Priority      flexInt  `json:"priority"`
	Nodes         string   `json:"nodes"`
	BatchHost     string   `json:"batch_host"`
	RequiredNodes string   `json:"required_nodes"`
	ExcludedNodes string   `json:"excluded_nodes"`
	NodeCount     flexInt  `json:"node_count"`
	CPUs          flexInt  `json:"cpus"`
	SubmitTime    flexInt  `json:"submit_time"`
	EligibleTime  flexInt  `json:"eligible_time"`
	StartTime     flexInt  `json:"start_time"`
	EndTime       flexInt  `json:"end_time"`
	TimeLimit     *flexInt `json:"time_limit"` // minutes
	ExitCode      flexInt  `json:"exit_code"`  // raw wait status
	Command       string   `json:"command"`
	WorkDir       string   `json:"current_working_directory"`
	StdOut        string   `json:"standard_output"`
	StdErr        string   `json:"standard_error"`
	Comment       string   `json:"comment"`
	Features      string   `json:"features"`        // the job's --constraint expression
	MemoryPerNode *flexInt `json:"memory_per_node"` // MiB; unset or NO_VAL: not asked per node
	CPUsPerTask   *flexInt `json:"cpus_per_task"`
}

func (j job38) job() Job {
	status := int(j.ExitCode)
	return Job{
		ID:            uint32(j.JobID),
		Name:          j.Name,
		User:          j.UserName,
		UserID:        int(j.UserID),
		Partition:     j.Partition,
		State:         JobState(strings.ToUpper(j.JobState)),
		Reason:        j.StateReason,
		Priority:      int64(j.Priority),
		Nodes:         j.Nodes,
		BatchHost:     j.BatchHost,
		RequiredNodes: j.RequiredNodes,
		ExcludedNodes: j.ExcludedNodes,
		NodeCount:     int(j.NodeCount),
		CPUs:          int(j.CPUs),
		SubmitTime:    unixTime(j.SubmitTime),
		EligibleTime:  unixTime(j.EligibleTime),
		StartTime:     unixTime(j.StartTime),
		EndTime:       unixTime(j.EndTime),
		TimeLimit:     minutes(j.TimeLimit),
		ExitCode:      (status >> 8) & 0xff,
		Signal:        status & 0x7f,
		Command:       j.Command,
		Comment:       j.Comment,
		Constraint:    j.Features,
		MemoryPerNode: optional(j.MemoryPerNode),
		CPUsPerTask:   int(optional(j.CPUsPerTask)),
		WorkDir:       j.WorkDir,
		StdOut:        j.StdOut,
		StdErr:        j.StdErr,
	}
}

type submit38 struct {
	Script string     `json:"script"`
	Job    jobProps38 `json:"job"`
}

type jobProps38 struct {
	Name        string            `json:"name,omitempty"`
	Partition   string            `json:"partition,omitempty"`
	Environment map[string]string `json:"environment"`
	WorkDir     string            `json:"current_working_directory,omitempty"`
	StdOut      string            `json:"standard_output,omitempty"`
	StdErr      string            `json:"standard_error,omitempty"`
	Nodes       []int             `json:"nodes,omitempty"` // [min, max]
	Tasks       int               `json:"tasks,omitempty"`
	CPUsPerTask int               `json:"cpus_per_task,omitempty"`
	NodeList    string            `json:"nodelist,omitempty"` // accepted by 22.05, not in its document
	TimeLimit   int               `json:"time_limit,omitempty"`
	Hold        bool              `json:"hold,omitempty"`
	Comment     string            `json:"comment,omitempty"`
}

type submitResp38 struct {
	JobID       *flexInt `json:"job_id"`
	StepID      string   `json:"step_id"`
	UserMessage string   `json:"job_submit_user_msg"`
}

type jobUpdate38 struct {
	Hold *bool `json:"hold,omitempty"`
}

func unixTime(s flexInt) time.Time {
	if s <= 0 || (s >= noValue32 && s <= 0xffffffff) {
		return time.Time{}
	}
	return time.Unix(int64(s), 0).UTC()
}

// optional returns a count Slurm may leave unset (null, 0 or NO_VAL/INFINITE, 32- or 64-bit) as
// 0 for "not given".
func optional(v *flexInt) int64 {
	if v == nil || *v <= 0 || *v >= noValue32 {
		return 0
	}
	return int64(*v)
}

func minutes(m *flexInt) time.Duration {
	if m == nil || *m <= 0 || *m >= noValue32 {
		return 0
	}
	return time.Duration(*m) * time.Minute
}

func splitList(s string) []string {
	if s == "" || s == "(null)" {
		return nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
