package slurm

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFlexInt(t *testing.T) {
	tests := []struct {
		in      string
		want    flexInt
		wantErr bool
	}{
		{`22`, 22, false},
		{`"22"`, 22, false},
		{`"05"`, 5, false},
		{`null`, 0, false},
		{`""`, 0, false},
		{`1.0`, 1, false},
		{`4294901759`, 4294901759, false},
		{`-1`, -1, false},
		{`"two"`, 0, true},
		{`true`, 0, true},
		{`[1]`, 0, true},
	}
	for _, tt := range tests {
		var got flexInt
		err := json.Unmarshal([]byte(tt.in), &got)
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("flexInt(%s) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestErrorCodeKeys(t *testing.T) {
	// v0.0.38 spells the error number three ways depending on the endpoint
	body := `{"errors":[{"error_code":2042,"error":"held"},{"errno":2018,"error":"node"},
		{"error_number":2017,"error":"job","description":"d","source":"s"},{"error":"no number"}]}`
	var env envelope38
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatal(err)
	}
	want := []SlurmError{{Code: 2042, Message: "held"}, {Code: 2018, Message: "node"},
		{Code: 2017, Message: "job", Description: "d", Source: "s"}, {Message: "no number"}}
	for i, e := range env.Errors {
		if got := e.slurm(); got != want[i] {
			t.Errorf("error %d = %+v, want %+v", i, got, want[i])
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want Version
		ok   bool
	}{
		{"22.05.8", Version{22, 5, 8, "22.05.8"}, true},
		{"23.02", Version{23, 2, 0, "23.02"}, true},
		{"23.02.0-0rc1", Version{23, 2, 0, "23.02.0-0rc1"}, true},
		{"22", Version{}, false},
		{"x.y", Version{}, false},
	}
	for _, tt := range tests {
		got, err := ParseVersion(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseVersion(%q) = %+v, %v", tt.in, got, err)
		}
	}
}

func TestParsePing(t *testing.T) {
	out := "Slurmctld(primary) at vm is UP\nSlurmctld(backup1) at vm2 is DOWN\nsomething else\n"
	want := []Controller{{Host: "vm", Mode: "primary", Up: true}, {Host: "vm2", Mode: "backup1", Up: false}}
	if got := parsePing(out); !slices.Equal(got, want) {
		t.Errorf("parsePing = %+v, want %+v", got, want)
	}
}

func TestJWTExpiry(t *testing.T) {
	tests := []struct {
		name    string
		tok     string
		want    time.Time
		wantErr string
	}{
		// {"exp":1795320000} and {"sun":"root"} base64url-encoded, with and without padding
		{"exp", "e30.eyJleHAiOjE3OTUzMjAwMDB9.sig", time.Unix(1795320000, 0), ""},
		{"no exp", "e30.eyJzdW4iOiJyb290In0.sig", time.Time{}, ""},
		{"two parts", "abc.def", time.Time{}, "2 dot-separated parts"},
		{"payload not base64", "e30.%%%.sig", time.Time{}, "base64url"},
		{"payload not JSON", "e30.bm9wZQ.sig", time.Time{}, "JSON"},
	}
	for _, tt := range tests {
		got, err := jwtExpiry(tt.tok)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("%s: %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestJobStateFinished(t *testing.T) {
	// CONFIGURING: the job's (cloud) nodes are still booting — seen from slurmrestd 22.05
	for _, s := range []JobState{JobPending, JobRunning, JobSuspended, JobCompleting, "CONFIGURING", "REQUEUED", "RESIZING", ""} {
		if s.Finished() {
			t.Errorf("%s.Finished() = true", s)
		}
	}
	for _, s := range []JobState{JobCompleted, JobCancelled, JobFailed, JobTimeout, JobNodeFail, JobOutOfMemory} {
		if !s.Finished() {
			t.Errorf("%s.Finished() = false", s)
		}
	}
}

// The job fields placement reads: the comment (drover hints), the constraint, memory per node and
// CPUs per task, with Slurm's "not given" spellings (null, 0, NO_VAL) read as 0.
func TestJobPlacementFields(t *testing.T) {
	for _, tc := range []struct {
		in        string
		mem       int64
		cpus      int
		comment   string
		constrain string
	}{
		{`{"comment":"drover:spread","features":"ib&avx512","memory_per_node":2048,"cpus_per_task":4}`, 2048, 4, "drover:spread", "ib&avx512"},
		{`{"comment":"","features":"","memory_per_node":null,"cpus_per_task":null}`, 0, 0, "", ""},
		{`{"memory_per_node":4294967294,"cpus_per_task":"65534"}`, 0, 65534, "", ""},
		{`{"memory_per_node":18446744073709551614}`, 0, 0, "", ""},
	} {
		var j job38
		if err := json.Unmarshal([]byte(tc.in), &j); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		got := j.job()
		if got.MemoryPerNode != tc.mem || got.CPUsPerTask != tc.cpus || got.Comment != tc.comment || got.Constraint != tc.constrain {
			t.Errorf("%s → mem %d cpus %d comment %q constraint %q", tc.in, got.MemoryPerNode, got.CPUsPerTask, got.Comment, got.Constraint)
		}
	}
}
