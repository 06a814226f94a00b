package slurm_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/slurm"
)

// fakeJWT builds a token with the shape slurmctld issues (HS256 header, exp and sun claims); the
// signature is junk, which only slurmctld would notice.
func fakeJWT(exp time.Time, user string) string {
	enc := base64.RawURLEncoding.EncodeToString
	payload := fmt.Sprintf(`{"exp":%d,"iat":%d,"sun":%q}`, exp.Unix(), exp.Add(-time.Hour).Unix(), user)
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload)) + ".c2lnbmF0dXJl"
}

var testToken = fakeJWT(time.Now().Add(24*time.Hour), "root")

// reply is what the fake slurmrestd answers on one route.
type reply struct {
	status int
	file   string // under testdata/
	body   string // used when file is empty
}

// request is what the fake slurmrestd received.
type request struct {
	method, path, body string
	user, token        string
}

type fakeREST struct {
	t      *testing.T
	srv    *httptest.Server
	routes map[string]reply // "GET /slurm/v0.0.38/ping"

	mu   sync.Mutex
	seen []request
}

// newFake serves routes like slurmrestd: it answers 401 "Authentication failure" when the token
// header is missing, as the real one does, and 404 for an unknown route.
func newFake(t *testing.T, routes map[string]reply) *fakeREST {
	t.Helper()
	f := &fakeREST{t: t, routes: routes}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeREST) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	req := request{method: r.Method, path: r.URL.Path, body: string(b),
		user: r.Header.Get("X-SLURM-USER-NAME"), token: r.Header.Get("X-SLURM-USER-TOKEN")}
	f.mu.Lock()
	f.seen = append(f.seen, req)
	f.mu.Unlock()
	if req.token == "" || req.user == "" {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "Authentication failure")
		return
	}
	rep, ok := f.routes[r.Method+" "+r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	body := []byte(rep.body)
	if rep.file != "" {
		var err error
		if body, err = os.ReadFile(filepath.Join("testdata", rep.file)); err != nil {
			f.t.Errorf("fixture: %v", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	w.Write(body)
}

func (f *fakeREST) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

func (f *fakeREST) cfg() config.Slurm {
	return config.Slurm{RestURL: f.srv.URL, APIVersion: "v0.0.38", User: "root", Token: testToken, Timeout: 5 * time.Second}
}

func (f *fakeREST) client(opts ...slurm.Option) *slurm.REST {
	f.t.Helper()
	c, err := slurm.NewREST(f.cfg(), opts...)
	if err != nil {
		f.t.Fatalf("NewREST: %v", err)
	}
	return c
}

const v = "/slurm/v0.0.38"

func ok(file string) reply { return reply{status: 200, file: file} }

func TestPing(t *testing.T) {
	tests := []struct {
		name string
		rep  reply
		want slurm.PingResult
	}{
		{"captured 22.05.8", ok("rest_ping.json"), slurm.PingResult{
			Version:     slurm.Version{Major: 22, Minor: 5, Micro: 8, Release: "22.05.8"},
			Controllers: []slurm.Controller{{Host: "vm", Mode: "primary", Up: true}},
		}},
		// the OpenAPI document declares the version numbers as strings: accept both
		{"version as strings, controller down", reply{status: 200, body: `{"meta":{"Slurm":{"version":
			{"major":"22","minor":"05","micro":"8"},"release":"22.05.8"}},"errors":[],
			"pings":[{"hostname":"c1","ping":"DOWN","status":-1,"mode":"primary"}]}`}, slurm.PingResult{
			Version:     slurm.Version{Major: 22, Minor: 5, Micro: 8, Release: "22.05.8"},
			Controllers: []slurm.Controller{{Host: "c1", Mode: "primary", Up: false}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]reply{"GET " + v + "/ping": tt.rep})
			got, err := f.client().Ping(context.Background())
			if err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if got.Version != tt.want.Version || !slices.Equal(got.Controllers, tt.want.Controllers) {
				t.Errorf("Ping = %+v, want %+v", got, tt.want)
			}
			if got.Up() != tt.want.Controllers[0].Up {
				t.Errorf("Up() = %v", got.Up())
			}
			if got.Version.String() != "22.05.8" || !got.Version.AtLeast(22, 5) || got.Version.AtLeast(23, 2) {
				t.Errorf("version %v: String/AtLeast wrong", got.Version)
			}
			reqs := f.requests()
			if len(reqs) != 1 || reqs[0].user != "root" || reqs[0].token != testToken {
				t.Errorf("headers not sent as X-SLURM-USER-NAME/TOKEN: %+v", reqs)
			}
		})
	}
}

func TestNodes(t *testing.T) {
	f := newFake(t, map[string]reply{"GET " + v + "/nodes": ok("rest_nodes.json")})
	nodes, err := f.client().Nodes(context.Background())
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	if !slices.Equal(names, []string{"n1", "n2", "n3", "n4"}) {
		t.Fatalf("names = %v", names)
	}
	// n2 is the node the capture gave weight 50
	if nodes[1].Weight != 50 || nodes[0].Weight != 1 {
		t.Errorf("weights n1=%d n2=%d, want 1 and 50", nodes[0].Weight, nodes[1].Weight)
	}
}

func TestNode(t *testing.T) {
	f := newFake(t, map[string]reply{
		"GET " + v + "/node/n2":   ok("rest_node_n2.json"),
		"GET " + v + "/node/n3":   ok("rest_node_n3_drained.json"),
		"GET " + v + "/node/nope": {status: 500, file: "rest_error_node_unknown.json"},
		// a 200 that lists another node: the one asked for is not there
		"GET " + v + "/node/ghost": ok("rest_node_n2.json"),
	})
	c := f.client()
	ctx := context.Background()

	n2, err := c.Node(ctx, "n2")
	if err != nil {
		t.Fatalf("Node(n2): %v", err)
	}
	// rest_node_n2.json: real_memory 1000 MiB, free_memory 22751 MiB, cpu_load 63 (load × 100),
	// boot_time 1795315169, state "idle" with no flags, port 17002.
	want := slurm.Node{
		Name: "n2", Hostname: "vm", Address: "127.0.0.1", Port: 17002, State: slurm.NodeIdle,
		CPUs: 2, IdleCPUs: 2, CPULoad: 0.63, RealMemory: 1000 << 20, FreeMemory: 22751 << 20,
		Weight: 50, Partitions: []string{"batch", "migratable"}, ReasonSetBy: "root",
		BootTime: time.Unix(1795315169, 0).UTC(), SlurmdStartTime: time.Unix(1795315508, 0).UTC(),
		LastBusy: time.Unix(1795315508, 0).UTC(), SlurmdVersion: "22.05.8", Flags: []string{},
	}
	if fmt.Sprintf("%+v", n2) != fmt.Sprintf("%+v", want) {
		t.Errorf("Node(n2) =\n %+v\nwant\n %+v", n2, want)
	}
	if n2.Drained() || !n2.Responding() {
		t.Errorf("n2: Drained=%v Responding=%v, want false true", n2.Drained(), n2.Responding())
	}

	n3, err := c.Node(ctx, "n3")
	if err != nil {
		t.Fatalf("Node(n3): %v", err)
	}
	if !n3.Drained() || n3.State != slurm.NodeIdle || n3.Reason != "capture fixture" || n3.ReasonChangedAt.IsZero() {
		t.Errorf("drained n3 = %+v", n3)
	}

	for _, name := range []string{"nope", "ghost"} {
		_, err = c.Node(ctx, name)
		if !errors.Is(err, slurm.ErrNotFound) {
			t.Errorf("Node(%s): %v, want ErrNotFound", name, err)
		}
	}
	var apiErr *slurm.APIError
	if _, err = c.Node(ctx, "nope"); !errors.As(err, &apiErr) || apiErr.Status != 500 || !apiErr.Has(2018) ||
		apiErr.Endpoint != v+"/node/nope" || !strings.Contains(err.Error(), "Invalid node name specified") {
		t.Errorf("Node(nope) error = %v (%+v)", err, apiErr)
	}

	// a name that could change the URL never leaves the client
	before := len(f.requests())
	for _, bad := range []string{"", "../ping", "n1?x=1", "n 1", "n[1-3]"} {
		if _, err := c.Node(ctx, bad); !errors.Is(err, slurm.ErrInvalid) {
			t.Errorf("Node(%q): %v, want ErrInvalid", bad, err)
		}
	}
	if len(f.requests()) != before {
		t.Errorf("invalid names reached the server")
	}
}

func TestPartitions(t *testing.T) {
	f := newFake(t, map[string]reply{"GET " + v + "/partitions": ok("rest_partitions.json")})
	parts, err := f.client().Partitions(context.Background())
	if err != nil {
		t.Fatalf("Partitions: %v", err)
	}
	if len(parts) != 2 {
		t.Fatalf("got %d partitions, want 2", len(parts))
	}
	// batch carries the "default" flag; max_time_limit -1 means unlimited (0)
	tests := []struct {
		name    string
		def     bool
		nodes   int
		maxTime time.Duration
	}{{"batch", true, 4, 0}, {"migratable", false, 4, 0}}
	for i, tt := range tests {
		p := parts[i]
		names, err := p.NodeNames()
		if p.Name != tt.name || p.Default != tt.def || err != nil || len(names) != tt.nodes || p.MaxTime != tt.maxTime ||
			p.State != "UP" || p.TotalCPUs != 8 {
			t.Errorf("partition %d = %+v (nodes %v, %v), want %s default=%v", i, p, names, err, tt.name, tt.def)
		}
	}
}

func TestJobs(t *testing.T) {
	f := newFake(t, map[string]reply{
		"GET " + v + "/jobs": ok("rest_jobs.json"),
		// quirks: numbers as strings or floats, nulls where the document promises numbers,
		// fields the document does not declare
		"GET " + v + "/job/7": {status: 200, body: `{"meta":{},"errors":[],"jobs":[{"job_id":"7",
			"job_state":"FAILED","priority":null,"time_limit":null,"cpus":2.0,"exit_code":768,
			"node_count":null,"submit_time":1795315515,"start_time":4294967294,
			"not_in_the_document":{"x":[1,2]},"partition":null}]}`},
		"GET " + v + "/job/8":     {status: 200, body: `{"jobs":[{"job_id":8,"job_state":"CANCELLED","exit_code":15}]}`},
		"GET " + v + "/job/2":     ok("rest_job_held.json"),
		"GET " + v + "/job/4":     ok("rest_job_running.json"),
		"GET " + v + "/job/99999": {status: 500, file: "rest_error_job_unknown.json"},
	})
	c := f.client()
	ctx := context.Background()

	jobs, err := c.Jobs(ctx)
	if err != nil {
		t.Fatalf("Jobs: %v", err)
	}
	if len(jobs) != 5 {
		t.Fatalf("got %d jobs, want 5", len(jobs))
	}
	j1 := jobs[0]
	if j1.ID != 1 || j1.State != slurm.JobCompleted || !j1.State.Finished() || j1.Partition != "batch" ||
		j1.Nodes != "n1" || j1.User != "root" || j1.TimeLimit != 0 || j1.Held() ||
		!j1.StartTime.Equal(time.Unix(1795315515, 0)) || !j1.EndTime.Equal(time.Unix(1795315517, 0)) {
		t.Errorf("job 1 = %+v", j1)
	}

	tests := []struct {
		id    uint32
		check func(slurm.Job) bool
		want  string
	}{
		// 768 = 3<<8: exit status 3, no signal; start_time 4294967294 is NO_VAL: zero time
		{7, func(j slurm.Job) bool {
			return j.ID == 7 && j.State == slurm.JobFailed && j.CPUs == 2 && j.ExitCode == 3 && j.Signal == 0 &&
				j.Priority == 0 && j.TimeLimit == 0 && j.StartTime.IsZero() && !j.SubmitTime.IsZero()
		}, "id 7 FAILED cpus 2 exit 3 signal 0, zero start"},
		// 15: killed by SIGTERM
		{8, func(j slurm.Job) bool { return j.ExitCode == 0 && j.Signal == 15 }, "exit 0 signal 15"},
		{2, func(j slurm.Job) bool {
			return j.Held() && j.Priority == 0 && j.Reason == "JobHeldAdmin" && j.State == slurm.JobPending &&
				j.Partition == "migratable" && !j.State.Finished()
		}, "held, pending, migratable"},
		// running capture: time_limit 525600 minutes (a year)
		{4, func(j slurm.Job) bool {
			names, _ := j.NodeNames()
			return j.State == slurm.JobRunning && j.BatchHost == "n1" && j.TimeLimit == 525600*time.Minute &&
				!j.Held() && slices.Equal(names, []string{"n1"})
		}, "running on n1 with a 525600 min limit"},
	}
	for _, tt := range tests {
		j, err := c.Job(ctx, tt.id)
		if err != nil {
			t.Errorf("Job(%d): %v", tt.id, err)
			continue
		}
		if !tt.check(j) {
			t.Errorf("Job(%d) = %+v, want %s", tt.id, j, tt.want)
		}
	}

	_, err = c.Job(ctx, 99999)
	var apiErr *slurm.APIError
	if !errors.Is(err, slurm.ErrNotFound) || !errors.As(err, &apiErr) || !apiErr.Has(2017) {
		t.Errorf("Job(99999): %v, want ErrNotFound with Slurm error 2017", err)
	}
}

func TestSubmit(t *testing.T) {
	const path = "POST " + v + "/job/submit"
	tests := []struct {
		name     string
		rep      reply
		req      slurm.SubmitRequest
		wantID   uint32
		wantWarn []int
		wantErr  error // checked with errors.Is; nil: success
		wantCode int   // Slurm error the *APIError must carry
		sent     string
	}{
		{
			name: "held answers 200 with error 2042: success",
			rep:  ok("rest_submit_resp.json"),
			req: slurm.SubmitRequest{Name: "restjob", Partition: "migratable", Script: "#!/bin/sh\nsleep 3\n",
				Hold: true, Nodes: 1, NodeList: "n3", TimeLimit: 90 * time.Second, WorkDir: "/tmp"},
			wantID: 6, wantWarn: []int{2042},
			// 90 s rounds up to 2 minutes; nodes is [min,max]; no environment given: PATH only
			sent: `{"script":"#!/bin/sh\nsleep 3\n","job":{"name":"restjob","partition":"migratable",` +
				`"environment":{"PATH":"/usr/bin:/bin"},"current_working_directory":"/tmp","nodes":[1,1],` +
				`"nodelist":"n3","time_limit":2,"hold":true}}`,
		},
		{
			name:   "plain",
			rep:    reply{status: 200, body: `{"errors":[],"job_id":7,"step_id":"BATCH","job_submit_user_msg":""}`},
			req:    slurm.SubmitRequest{Script: "#!/bin/sh\ntrue\n", Environment: map[string]string{"FOO": "bar"}},
			wantID: 7,
			sent:   `{"script":"#!/bin/sh\ntrue\n","job":{"environment":{"FOO":"bar"}}}`,
		},
		{
			name:     "200 with errors and no job id is a failure",
			rep:      reply{status: 200, body: `{"errors":[{"error_code":2002,"error":"Access/permission denied"}]}`},
			req:      slurm.SubmitRequest{Script: "#!/bin/sh\n"},
			wantErr:  slurm.ErrUnauthorized,
			wantCode: 2002,
		},
		{
			name:     "400 for a key 22.05 disables",
			rep:      reply{status: 400, file: "rest_error_submit_disabled_key.json"},
			req:      slurm.SubmitRequest{Script: "#!/bin/sh\n"},
			wantCode: 9001,
		},
		{
			name:    "a script without #! never leaves the client",
			req:     slurm.SubmitRequest{Script: "sleep 1"},
			wantErr: slurm.ErrInvalid,
		},
		{
			name:    "job id missing in a clean 200",
			rep:     reply{status: 200, body: `{"errors":[],"step_id":"BATCH"}`},
			req:     slurm.SubmitRequest{Script: "#!/bin/sh\n"},
			wantErr: slurm.ErrMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]reply{path: tt.rep})
			res, err := f.client().Submit(context.Background(), tt.req)
			if tt.wantErr == nil && tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("Submit: %v", err)
				}
				var codes []int
				for _, w := range res.Warnings {
					codes = append(codes, w.Code)
				}
				if res.JobID != tt.wantID || !slices.Equal(codes, tt.wantWarn) {
					t.Errorf("Submit = %+v, want job %d warnings %v", res, tt.wantID, tt.wantWarn)
				}
			} else {
				if err == nil {
					t.Fatalf("Submit = %+v, want an error", res)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("Submit: %v, want %v", err, tt.wantErr)
				}
				var apiErr *slurm.APIError
				if tt.wantCode != 0 && (!errors.As(err, &apiErr) || !apiErr.Has(tt.wantCode)) {
					t.Errorf("Submit: %v, want *APIError with code %d", err, tt.wantCode)
				}
			}
			reqs := f.requests()
			if tt.sent != "" {
				if len(reqs) != 1 || !jsonEqual(t, reqs[0].body, tt.sent) {
					t.Errorf("sent %+v\nwant body %s", reqs, tt.sent)
				}
			}
			if errors.Is(tt.wantErr, slurm.ErrInvalid) && len(reqs) != 0 {
				t.Errorf("invalid request reached the server: %+v", reqs)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("sent body is not JSON: %v: %s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("want body is not JSON: %v", err)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

func TestHoldReleaseCancel(t *testing.T) {
	f := newFake(t, map[string]reply{
		"POST " + v + "/job/5":   ok("rest_cancel.json"),
		"DELETE " + v + "/job/5": ok("rest_cancel.json"),
		"POST " + v + "/job/1":   {status: 500, file: "rest_error_job_finished.json"},
		"DELETE " + v + "/job/6": {status: 500, body: `{"errors":[{"error_number":2021,"error":"Job/step already completing or completed"}]}`},
		"DELETE " + v + "/job/9": {status: 500, body: `{"errors":[{"error_number":2017,"error":"Invalid job id specified"}]}`},
	})
	c := f.client()
	ctx := context.Background()
	if err := c.Hold(ctx, 5); err != nil {
		t.Errorf("Hold: %v", err)
	}
	if err := c.Release(ctx, 5); err != nil {
		t.Errorf("Release: %v", err)
	}
	if err := c.Cancel(ctx, 5); err != nil {
		t.Errorf("Cancel: %v", err)
	}
	want := []request{
		{method: "POST", path: v + "/job/5", body: `{"hold":true}`},
		{method: "POST", path: v + "/job/5", body: `{"hold":false}`},
		{method: "DELETE", path: v + "/job/5"},
	}
	got := f.requests()
	for i := range want {
		if i >= len(got) || got[i].method != want[i].method || got[i].path != want[i].path || got[i].body != want[i].body {
			t.Fatalf("requests = %+v, want %+v", got, want)
		}
	}

	// holding a finished job: Slurm's 2084 comes back as an *APIError
	var apiErr *slurm.APIError
	if err := c.Hold(ctx, 1); !errors.As(err, &apiErr) || !apiErr.Has(2084) || apiErr.Method != "POST" {
		t.Errorf("Hold(finished): %v, want *APIError with 2084", err)
	}
	// cancelling a job that is already ending is done
	if err := c.Cancel(ctx, 6); err != nil {
		t.Errorf("Cancel(completing): %v, want nil", err)
	}
	if err := c.Cancel(ctx, 9); !errors.Is(err, slurm.ErrNotFound) {
		t.Errorf("Cancel(unknown): %v, want ErrNotFound", err)
	}
}

// probe is a ControllerProber with a fixed answer.
type probe struct {
	up  bool
	err error
}

func (p probe) Ping(context.Context) (slurm.PingResult, error) {
	return slurm.PingResult{Controllers: []slurm.Controller{{Host: "c", Mode: "primary", Up: p.up}}}, p.err
}

func TestAuthErrors(t *testing.T) {
	ambiguous := reply{status: 500, file: "rest_error_unspecified.json"}
	tests := []struct {
		name            string
		rep             reply
		opts            []slurm.Option
		token           string
		wantUnauth      bool
		wantUnavailable bool
		wantInMsg       string
		wantRequests    int
	}{
		{"HTTP 401", reply{status: 401, body: "Authentication failure"}, nil, "", true, false, "scontrol token", 1},
		{"HTTP 403", reply{status: 403, body: `{"errors":[]}`}, nil, "", true, false, "scontrol token", 1},
		{"slurm 1007", reply{status: 500, body: `{"errors":[{"error_number":1007,"error":"Protocol authentication error"}]}`},
			nil, "", true, false, "scontrol token", 1},
		{"slurm 6000", reply{status: 500, body: `{"errors":[{"errno":6000,"error":"Invalid authentication credential"}]}`},
			nil, "", true, false, "scontrol token", 1},
		{"slurm 1001", reply{status: 500, body: `{"errors":[{"error_code":1001,"error":"Unable to contact slurm controller"}]}`},
			nil, "", false, true, "1001", 1},
		// 22.05 answers -1 both for a rejected token and for a dead slurmctld: the prober decides
		{"unspecified, slurmctld up: token rejected", ambiguous, []slurm.Option{slurm.WithControllerProber(probe{up: true})},
			"", true, false, "rejected the token", 1},
		{"unspecified, slurmctld down", ambiguous, []slurm.Option{slurm.WithControllerProber(probe{up: false})},
			"", false, true, "does not answer", 1},
		{"unspecified, no prober", ambiguous, []slurm.Option{slurm.WithControllerProber(nil)},
			"", false, false, "scontrol ping", 1},
		{"unspecified, prober fails", ambiguous, []slurm.Option{slurm.WithControllerProber(probe{err: errors.New("no scontrol")})},
			"", false, false, "no scontrol", 1},
		{"expired token is refused before sending", ok("rest_nodes.json"), nil,
			fakeJWT(time.Now().Add(-time.Minute), "root"), true, false, "expired", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]reply{"GET " + v + "/nodes": tt.rep})
			cfg := f.cfg()
			if tt.token != "" {
				cfg.Token = tt.token
			}
			c, err := slurm.NewREST(cfg, tt.opts...)
			if err != nil {
				t.Fatalf("NewREST: %v", err)
			}
			_, err = c.Nodes(context.Background())
			if err == nil {
				t.Fatal("Nodes succeeded, want an error")
			}
			if got := errors.Is(err, slurm.ErrUnauthorized); got != tt.wantUnauth {
				t.Errorf("errors.Is(ErrUnauthorized) = %v, want %v: %v", got, tt.wantUnauth, err)
			}
			if got := errors.Is(err, slurm.ErrUnavailable); got != tt.wantUnavailable {
				t.Errorf("errors.Is(ErrUnavailable) = %v, want %v: %v", got, tt.wantUnavailable, err)
			}
			if !strings.Contains(err.Error(), tt.wantInMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantInMsg)
			}
			if strings.Contains(err.Error(), cfg.Token) || strings.Contains(err.Error(), strings.Split(cfg.Token, ".")[1]) {
				t.Errorf("error shows the token: %v", err)
			}
			if n := len(f.requests()); n != tt.wantRequests {
				t.Errorf("%d requests reached the server, want %d", n, tt.wantRequests)
			}
		})
	}
}

func TestNewRESTToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name      string
		token     string
		file      string
		wantErr   []string // substrings; empty: success
		wantToken string
	}{
		{"missing", "", "", []string{"slurm.token", "slurm.token_file", "DROVER_SLURM_TOKEN", "scontrol token"}, ""},
		{"not a JWT", "hunter2", "", []string{"not a JWT", "slurm.token"}, ""},
		{"missing file", "", filepath.Join(dir, "nope"), []string{"slurm.token_file", "nope"}, ""},
		{"empty file", "", write("empty", "\n"), []string{"is empty"}, ""},
		{"file with newline", "", write("plain", testToken+"\n"), nil, testToken},
		{"file as scontrol token prints it", "", write("raw", "SLURM_JWT="+testToken+"\n"), nil, testToken},
		{"token wins over file", testToken, write("other", "x.y.z"), nil, testToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]reply{"GET " + v + "/ping": ok("rest_ping.json")})
			cfg := f.cfg()
			cfg.Token, cfg.TokenFile = tt.token, tt.file
			c, err := slurm.NewREST(cfg)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("NewREST succeeded, want an error")
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %q", err, s)
					}
				}
				if tt.token != "" && strings.Contains(err.Error(), tt.token) {
					t.Errorf("error shows the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewREST: %v", err)
			}
			if _, err := c.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if got := f.requests()[0].token; got != tt.wantToken {
				t.Errorf("sent token %q, want %q", got, tt.wantToken)
			}
		})
	}
}

func TestTokenFileRotation(t *testing.T) {
	f := newFake(t, map[string]reply{"GET " + v + "/ping": ok("rest_ping.json")})
	path := filepath.Join(t.TempDir(), "root.jwt")
	first, second := fakeJWT(time.Now().Add(time.Hour), "root"), fakeJWT(time.Now().Add(2*time.Hour), "root")
	if err := os.WriteFile(path, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := f.cfg()
	cfg.Token, cfg.TokenFile = "", path
	c, err := slurm.NewREST(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// scripts/testbed replaces the file (write + rename): the next request uses the new token
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(second+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if reqs[0].token != first || reqs[1].token != second {
		t.Errorf("tokens sent: first ok=%v, second ok=%v", reqs[0].token == first, reqs[1].token == second)
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		name, body string
		want       string // in the message, besides the endpoint
	}{
		{"truncated", `{"nodes":[{"name":"n1"`, "invalid JSON"},
		{"not JSON", `<html>oops</html>`, "invalid JSON at byte 1"},
		{"empty", ``, "empty body"},
		{"nodes not a list", `{"nodes":"n1"}`, "field nodes: got JSON string, want an array"},
		{"cpus not a number", `{"nodes":[{"name":"n1","cpus":"two"}]}`, `field nodes.cpus: got JSON "two", want a number`},
		{"errors not a list", `{"errors":{"error":"x"}}`, "field errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]reply{"GET " + v + "/nodes": {status: 200, body: tt.body}})
			_, err := f.client().Nodes(context.Background())
			if !errors.Is(err, slurm.ErrMalformed) {
				t.Fatalf("Nodes: %v, want ErrMalformed", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "GET "+v+"/nodes") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q should name the endpoint and say %q", msg, tt.want)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	f := newFake(t, map[string]reply{"GET " + v + "/ping": {status: 502, body: "bad gateway"}})
	c := f.client()
	var apiErr *slurm.APIError
	if _, err := c.Ping(context.Background()); !errors.Is(err, slurm.ErrUnavailable) || !errors.As(err, &apiErr) ||
		apiErr.Status != 502 || apiErr.Body != "bad gateway" {
		t.Errorf("502: %v, want ErrUnavailable *APIError", err)
	}
	f.srv.Close()
	_, err := c.Ping(context.Background())
	if !errors.Is(err, slurm.ErrUnavailable) || !strings.Contains(err.Error(), v+"/ping") {
		t.Errorf("closed server: %v, want ErrUnavailable naming the endpoint", err)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := slurm.NewREST(config.Slurm{RestURL: srv.URL, User: "root", Token: testToken, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Jobs(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, slurm.ErrUnavailable) {
		t.Errorf("Jobs: %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}
}

func TestNewRESTConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Slurm
		want string
	}{
		{"other api version", config.Slurm{RestURL: "http://127.0.0.1:1", User: "root", Token: testToken, APIVersion: "v0.0.40"}, "v0.0.40"},
		{"no url", config.Slurm{User: "root", Token: testToken}, "slurm.rest_url"},
		{"credentials in url", config.Slurm{RestURL: "http://u:p@127.0.0.1:1", User: "root", Token: testToken}, "credentials"},
		{"no user", config.Slurm{RestURL: "http://127.0.0.1:1", Token: testToken}, "slurm.user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := slurm.NewREST(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewREST: %v, want an error naming %q", err, tt.want)
			}
		})
	}
	if _, err := slurm.New(config.Slurm{APIVersion: "v0.0.41"}); err == nil {
		t.Error("New accepted an API version it does not speak")
	}
	c, err := slurm.New(config.Slurm{RestURL: "http://127.0.0.1:1", User: "root", Token: testToken, APIVersion: "v0.0.38"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(format, c); strings.Contains(s, testToken) || strings.Contains(s, strings.Split(testToken, ".")[1]) {
			t.Errorf("%s of the client shows the token: %s", format, s)
		}
	}
}

// An unreadable token file is reported as a credentials problem, with the fix.
func TestMissingTokenFileIsUnauthorized(t *testing.T) {
	c, err := slurm.NewREST(config.Slurm{RestURL: "http://127.0.0.1:1", User: "root", TokenFile: "/nonexistent/token"}, slurm.WithControllerProber(nil))
	if err == nil {
		_, err = c.Ping(context.Background())
	}
	if !errors.Is(err, slurm.ErrUnauthorized) || !strings.Contains(err.Error(), "scontrol token") || !strings.Contains(err.Error(), "/nonexistent/token") {
		t.Fatalf("err = %v", err)
	}
}
