package hooks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseResumeFile(t *testing.T) {
	data := `{"all_nodes_resume":"vn[1-3]","jobs":[
	  {"extra":"","features":"vnode","job_id":12,"nodes_alloc":"vn[1-2]","nodes_resume":"vn[1-2]","oversubscribe":"OK","partition":"migratable","reservation":""},
	  {"job_id":13,"nodes_alloc":"vn3","nodes_resume":"vn3","partition":"migratable"}]}`
	f, byNode, err := ParseResumeFile([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if f.AllNodesResume != "vn[1-3]" || byNode["vn2"].JobID != 12 || byNode["vn3"].JobID != 13 || byNode["vn1"].Features != "vnode" {
		t.Fatalf("got %+v %+v", f, byNode)
	}
	// what slurmctld 22.05.8 wrote on the testbed
	_, byNode, err = ParseResumeFile([]byte(`{"jobs":[{"job_id":2,"nodes":"vn[2-3]"}],"all_nodes":"vn[2-3]"}`))
	if err != nil || byNode["vn3"].JobID != 2 || len(byNode) != 2 {
		t.Fatalf("22.05 format: %+v %v", byNode, err)
	}
	for _, bad := range []string{`{`, `[]`, `{"jobs":[{"job_id":0,"nodes_resume":"vn1"}]}`, `{"jobs":[{"job_id":5,"nodes_resume":"vn["}]}`} {
		if _, _, err := ParseResumeFile([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestReadResumeFileErrorsNameTheProblem(t *testing.T) {
	if _, err := ReadResumeFile(""); err == nil || !strings.Contains(err.Error(), "SLURM_RESUME_FILE is not set") {
		t.Errorf("unset: %v", err)
	}
	p := filepath.Join(t.TempDir(), "resume.json")
	if _, err := ReadResumeFile(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("missing: %v", err)
	}
	if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResumeFile(p); err == nil || !strings.Contains(err.Error(), "not the JSON Slurm writes") {
		t.Errorf("garbage: %v", err)
	}
}

func TestJobFromEnv(t *testing.T) {
	env := map[string]string{
		"SLURM_JOB_ID": "42", "SLURM_JOB_NAME": "x'); DROP TABLE jobs;--", "SLURM_JOB_USER": "alice",
		"SLURM_JOB_PARTITION": "migratable", "SLURM_JOB_NODELIST": "vn[1-2]", "SLURM_JOB_EXIT_CODE2": "3:0",
	}
	j, err := JobFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if j.ID != 42 || j.Name != env["SLURM_JOB_NAME"] || len(j.Nodes) != 2 || j.ExitCode == nil || *j.ExitCode != 3 || j.State != "failed" {
		t.Fatalf("job = %+v", j)
	}
	// wait() status 256 = exit code 1
	env2 := map[string]string{"SLURM_JOB_ID": "7", "SLURM_JOB_EXIT_CODE": "256", "SLURM_JOB_NODELIST": "(null)"}
	j, err = JobFromEnv(func(k string) string { return env2[k] })
	if err != nil || *j.ExitCode != 1 || len(j.Nodes) != 0 {
		t.Fatalf("job = %+v, %v", j, err)
	}
	// exit:signal → state when Slurm has not settled it yet
	for ec, want := range map[string]string{"0:0": "completed", "0:15": "cancelled", "0:9": "cancelled", "1:0": "failed", "0:11": "failed"} {
		j, _ := JobFromEnv(func(k string) string {
			return map[string]string{"SLURM_JOB_ID": "8", "SLURM_JOB_EXIT_CODE2": ec}[k]
		})
		if j.State != want {
			t.Errorf("exit %s: state %q, want %q", ec, j.State, want)
		}
	}
	for _, id := range []string{"", "abc", "-1", "0", "99999999999"} {
		if _, err := JobFromEnv(func(k string) string {
			if k == "SLURM_JOB_ID" {
				return id
			}
			return ""
		}); err == nil || !strings.Contains(err.Error(), "SLURM_JOB_ID") {
			t.Errorf("SLURM_JOB_ID=%q: err = %v", id, err)
		}
	}
}

func TestSlurmReason(t *testing.T) {
	got := slurmReason("hv1 refused\nthe \"VM\": " + strings.Repeat("x", 300))
	if !strings.HasPrefix(got, "drover: hv1 refused the VM: ") || len(got) > 200 || strings.ContainsAny(got, "\n\"") {
		t.Fatalf("slurmReason = %q", got)
	}
}
