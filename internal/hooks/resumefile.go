package hooks

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/drover-hpc/drover/internal/hostlist"
)

// ResumeJob is one job of the SLURM_RESUME_FILE that slurmctld writes for ResumeProgram (22.05+).
// Slurm 22.05 names a job's nodes "nodes"; later releases say "nodes_alloc" and "nodes_resume"
// and add features, extra and partition. Either form is read.
type ResumeJob struct {
	JobID       int64  `json:"job_id"`
	Nodes       string `json:"nodes"`
	NodesAlloc  string `json:"nodes_alloc"`
	NodesResume string `json:"nodes_resume"`
	Features    string `json:"features"`
	Extra       string `json:"extra"`
	Partition   string `json:"partition"`
}

// nodes returns the job's nodes (all of them, not only those resumed now); nil when the entry
// names none or the expression is malformed (ParseResumeFile reports that).
func (j ResumeJob) nodes() []string {
	for _, expr := range []string{j.NodesAlloc, j.Nodes, j.NodesResume} {
		if expr != "" {
			names, _ := hostlist.Expand(expr)
			return names
		}
	}
	return nil
}

// ResumeFile is the whole file.
type ResumeFile struct {
	AllNodes       string      `json:"all_nodes"` // 22.05
	AllNodesResume string      `json:"all_nodes_resume"`
	Jobs           []ResumeJob `json:"jobs"`
}

// ParseResumeFile decodes a resume file and maps each node to be resumed to its job.
func ParseResumeFile(data []byte) (ResumeFile, map[string]ResumeJob, error) {
	var f ResumeFile
	if err := json.Unmarshal(data, &f); err != nil {
		return f, nil, fmt.Errorf("not the JSON Slurm writes (%w)", err)
	}
	byNode := map[string]ResumeJob{}
	for _, j := range f.Jobs {
		if j.JobID <= 0 {
			return f, nil, fmt.Errorf("job entry without a valid job_id: %+v", j)
		}
		expr := j.NodesResume
		if expr == "" {
			expr = j.NodesAlloc
		}
		if expr == "" {
			expr = j.Nodes
		}
		if expr == "" {
			continue
		}
		names, err := hostlist.Expand(expr)
		if err != nil {
			return f, nil, fmt.Errorf("job %d: %w", j.JobID, err)
		}
		for _, n := range names {
			byNode[n] = j
		}
	}
	return f, byNode, nil
}

// ReadResumeFile reads the file named by path (SLURM_RESUME_FILE). Errors name the variable and path.
func ReadResumeFile(path string) (map[string]ResumeJob, error) {
	if path == "" {
		return nil, fmt.Errorf("SLURM_RESUME_FILE is not set (Slurm older than 22.05, or not run by slurmctld)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("SLURM_RESUME_FILE %s: %w", path, err)
	}
	_, m, err := ParseResumeFile(data)
	if err != nil {
		return nil, fmt.Errorf("SLURM_RESUME_FILE %s: %w", path, err)
	}
	return m, nil
}
