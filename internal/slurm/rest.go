package slurm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/drover-hpc/drover/internal/config"
)

// APIVersion38 is the slurmrestd OpenAPI version REST speaks.
const APIVersion38 = "v0.0.38"

// maxBody bounds what REST reads of an answer.
const maxBody = 64 << 20

// REST is a Client over slurmrestd's OpenAPI v0.0.38 (Slurm 22.05), authenticated with a JWT
// sent as X-SLURM-USER-NAME / X-SLURM-USER-TOKEN.
type REST struct {
	base    string // RestURL without a trailing slash
	prefix  string // /slurm/v0.0.38
	user    string
	tokens  *tokenSource
	http    *http.Client
	timeout time.Duration
	probe   ControllerProber
	now     func() time.Time
}

// NewREST builds a v0.0.38 client from cfg. The token is cfg.Token, else the trimmed contents
// of cfg.TokenFile (read again when the file changes); without either it fails with an error
// naming slurm.token, slurm.token_file and DROVER_SLURM_TOKEN. cfg.Timeout bounds each request
// (0: only ctx does). When cfg.Scontrol is set, an ambiguous answer from slurmrestd is resolved
// with `scontrol ping` (see WithControllerProber).
func NewREST(cfg config.Slurm, opts ...Option) (*REST, error) {
	if cfg.APIVersion != "" && cfg.APIVersion != APIVersion38 {
		return nil, fmt.Errorf("slurm: slurm.api_version %q: this client speaks %s", cfg.APIVersion, APIVersion38)
	}
	u, err := url.Parse(cfg.RestURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("slurm: slurm.rest_url %q is not an http(s) URL", cfg.RestURL)
	}
	if u.User != nil {
		return nil, errors.New("slurm: slurm.rest_url must not carry credentials: use slurm.token_file")
	}
	if cfg.User == "" {
		return nil, errors.New("slurm: slurm.user is empty: it names the token's user (X-SLURM-USER-NAME)")
	}
	c := &REST{
		base:    strings.TrimRight(cfg.RestURL, "/"),
		prefix:  "/slurm/" + APIVersion38,
		user:    cfg.User,
		http:    &http.Client{},
		timeout: cfg.Timeout,
		now:     time.Now,
	}
	if cfg.Scontrol != "" {
		c.probe = NewScontrol(cfg)
	}
	for _, o := range opts {
		o(c)
	}
	if c.tokens, err = newTokenSource(cfg, c.now); err != nil {
		return nil, err
	}
	return c, nil
}

// String names the endpoint and user, never the token.
func (c *REST) String() string { return fmt.Sprintf("slurm.REST(%s as %s)", c.base, c.user) }

// GoString keeps %#v from printing the token.
func (c *REST) GoString() string { return c.String() }

// Ping implements Client.
func (c *REST) Ping(ctx context.Context) (PingResult, error) {
	var body pings38
	meta, err := c.do(ctx, http.MethodGet, "/ping", nil, &body)
	if err != nil {
		return PingResult{}, err
	}
	res := PingResult{Version: meta.version()}
	for _, p := range body.Pings {
		res.Controllers = append(res.Controllers, Controller{Host: p.Hostname, Mode: p.Mode, Up: strings.EqualFold(p.Ping, "UP")})
	}
	if len(res.Controllers) == 0 {
		return res, fmt.Errorf("slurm: GET %s/ping: %w: no controller in the answer", c.prefix, ErrMalformed)
	}
	return res, nil
}

// Nodes implements Client.
func (c *REST) Nodes(ctx context.Context) ([]Node, error) {
	var body nodes38
	if _, err := c.do(ctx, http.MethodGet, "/nodes", nil, &body); err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(body.Nodes))
	for _, n := range body.Nodes {
		out = append(out, n.node())
	}
	return out, nil
}

// Node implements Client.
func (c *REST) Node(ctx context.Context, name string) (Node, error) {
	if err := checkName(name); err != nil {
		return Node{}, err
	}
	var body nodes38
	path := "/node/" + url.PathEscape(name)
	if _, err := c.do(ctx, http.MethodGet, path, nil, &body); err != nil {
		return Node{}, err
	}
	for _, n := range body.Nodes {
		if n.Name == name {
			return n.node(), nil
		}
	}
	return Node{}, fmt.Errorf("slurm: GET %s%s: node %q: %w", c.prefix, path, name, ErrNotFound)
}

// Partitions implements Client.
func (c *REST) Partitions(ctx context.Context) ([]Partition, error) {
	var body partitions38
	if _, err := c.do(ctx, http.MethodGet, "/partitions", nil, &body); err != nil {
		return nil, err
	}
	out := make([]Partition, 0, len(body.Partitions))
	for _, p := range body.Partitions {
		out = append(out, p.partition())
	}
	return out, nil
}

// Jobs implements Client.
func (c *REST) Jobs(ctx context.Context) ([]Job, error) {
	var body jobs38
	if _, err := c.do(ctx, http.MethodGet, "/jobs", nil, &body); err != nil {
		return nil, err
	}
	out := make([]Job, 0, len(body.Jobs))
	for _, j := range body.Jobs {
		out = append(out, j.job())
	}
	return out, nil
}

// Job implements Client.
func (c *REST) Job(ctx context.Context, id uint32) (Job, error) {
	var body jobs38
	path := jobPath(id)
	if _, err := c.do(ctx, http.MethodGet, path, nil, &body); err != nil {
		return Job{}, err
	}
	for _, j := range body.Jobs {
		if uint32(j.JobID) == id {
			return j.job(), nil
		}
	}
	return Job{}, fmt.Errorf("slurm: GET %s%s: job %d: %w", c.prefix, path, id, ErrNotFound)
}

// Submit implements Client. A held submission is a success even though slurmrestd lists
// error 2042 with it: that entry lands in SubmitResult.Warnings.
func (c *REST) Submit(ctx context.Context, req SubmitRequest) (SubmitResult, error) {
	body, err := submitBody(req)
	if err != nil {
		return SubmitResult{}, err
	}
	var resp submitResp38
	var warnings []SlurmError
	_, err = c.doWith(ctx, http.MethodPost, "/job/submit", body, &resp, func(errs []SlurmError) ([]SlurmError, bool) {
		// success with a job id: the errors are warnings (2042 for a held job)
		if resp.JobID == nil || *resp.JobID <= 0 {
			return errs, false
		}
		warnings = errs
		return nil, true
	})
	if err != nil {
		return SubmitResult{}, err
	}
	if resp.JobID == nil || *resp.JobID <= 0 || *resp.JobID > math.MaxUint32 {
		return SubmitResult{}, fmt.Errorf("slurm: POST %s/job/submit: %w: no valid job_id in a successful answer", c.prefix, ErrMalformed)
	}
	return SubmitResult{JobID: uint32(*resp.JobID), StepID: resp.StepID, UserMessage: resp.UserMessage, Warnings: warnings}, nil
}

func submitBody(req SubmitRequest) (submit38, error) {
	if !strings.HasPrefix(req.Script, "#!") {
		return submit38{}, fmt.Errorf("slurm: submit: %w: the script must start with #!", ErrInvalid)
	}
	if req.Nodes < 0 || req.Tasks < 0 || req.CPUsPerTask < 0 || req.TimeLimit < 0 {
		return submit38{}, fmt.Errorf("slurm: submit: %w: negative nodes, tasks, cpus per task or time limit", ErrInvalid)
	}
	env := req.Environment
	if len(env) == 0 {
		env = map[string]string{"PATH": "/usr/bin:/bin"}
	}
	p := jobProps38{
		Name:        req.Name,
		Partition:   req.Partition,
		Environment: env,
		WorkDir:     req.WorkDir,
		StdOut:      req.StdOut,
		StdErr:      req.StdErr,
		Tasks:       req.Tasks,
		CPUsPerTask: req.CPUsPerTask,
		NodeList:    req.NodeList,
		Hold:        req.Hold,
		Comment:     req.Comment,
	}
	if req.Nodes > 0 {
		p.Nodes = []int{req.Nodes, req.Nodes}
	}
	if req.TimeLimit > 0 {
		p.TimeLimit = int((req.TimeLimit + time.Minute - 1) / time.Minute)
	}
	return submit38{Script: req.Script, Job: p}, nil
}

// Hold implements Client.
func (c *REST) Hold(ctx context.Context, id uint32) error { return c.setHold(ctx, id, true) }

// Release implements Client.
func (c *REST) Release(ctx context.Context, id uint32) error { return c.setHold(ctx, id, false) }

func (c *REST) setHold(ctx context.Context, id uint32, hold bool) error {
	_, err := c.do(ctx, http.MethodPost, jobPath(id), jobUpdate38{Hold: &hold}, nil)
	return err
}

// Cancel implements Client.
func (c *REST) Cancel(ctx context.Context, id uint32) error {
	_, err := c.do(ctx, http.MethodDelete, jobPath(id), nil, nil)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Has(codeAlreadyDone) {
		return nil
	}
	return err
}

func jobPath(id uint32) string { return "/job/" + strconv.FormatUint(uint64(id), 10) }

// do sends one request; out (if not nil) receives the decoded 200 answer. Any Slurm error in
// the answer fails the call.
func (c *REST) do(ctx context.Context, method, path string, in, out any) (meta38, error) {
	return c.doWith(ctx, method, path, in, out, nil)
}

// doWith is do with accept, which may declare the Slurm errors of a 200 answer (out already
// decoded) harmless: it returns those that still count and whether the call succeeded.
func (c *REST) doWith(ctx context.Context, method, path string, in, out any,
	accept func([]SlurmError) ([]SlurmError, bool)) (meta38, error) {
	endpoint := c.prefix + path
	fail := func(format string, args ...any) error {
		return fmt.Errorf("slurm: %s %s: "+format, append([]any{method, endpoint}, args...)...)
	}
	token, err := c.tokens.get()
	if err != nil {
		return meta38{}, err
	}
	var reqBody io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return meta38{}, fail("encode request: %w", err)
		}
		reqBody = bytes.NewReader(b)
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+endpoint, reqBody)
	if err != nil {
		return meta38{}, fail("%w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-SLURM-USER-NAME", c.user)
	req.Header.Set("X-SLURM-USER-TOKEN", token)
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error names the URL (no credentials: they travel in headers)
		return meta38{}, fail("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return meta38{}, fail("read answer: %w: %w", ErrUnavailable, err)
	}
	if len(raw) > maxBody {
		return meta38{}, fail("%w: answer larger than %d bytes", ErrMalformed, maxBody)
	}

	apiErr := &APIError{Method: method, Endpoint: endpoint, Status: resp.StatusCode}
	var env envelope38
	if err := json.Unmarshal(raw, &env); err != nil {
		if resp.StatusCode != http.StatusOK {
			apiErr.Body = truncate(strings.TrimSpace(string(raw)), 200)
			apiErr.classify(c.user)
			return meta38{}, apiErr
		}
		return meta38{}, fail("%w: %s", ErrMalformed, describeJSONError(raw, err))
	}
	for _, e := range env.Errors {
		apiErr.Errors = append(apiErr.Errors, e.slurm())
	}
	if resp.StatusCode == http.StatusOK {
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return meta38{}, fail("%w: %s", ErrMalformed, describeJSONError(raw, err))
			}
		}
		if len(apiErr.Errors) == 0 {
			return env.Meta, nil
		}
		if accept != nil {
			var ok bool
			if apiErr.Errors, ok = accept(apiErr.Errors); ok {
				return env.Meta, nil
			}
		}
	}
	apiErr.classify(c.user)
	if apiErr.ambiguous() {
		c.resolveAmbiguous(ctx, apiErr)
	}
	return meta38{}, apiErr
}

// resolveAmbiguous asks the prober whether slurmctld is up: if it is, slurmctld rejected the
// token (22.05 does not say so); if not, it is unreachable.
func (c *REST) resolveAmbiguous(ctx context.Context, e *APIError) {
	const both = "slurmrestd gives this answer when slurmctld rejects the token (expired, " +
		"or signed with another key) and when slurmctld cannot be reached"
	if c.probe == nil {
		e.Hint = both + ": check `scontrol ping`; " + tokenHint(c.user)
		return
	}
	res, err := c.probe.Ping(ctx)
	switch {
	case err != nil:
		e.Hint = both + "; asking scontrol did not tell (" + err.Error() + "): " + tokenHint(c.user)
	case res.Up():
		e.unauthorized = true
		e.Hint = "slurmctld is up (scontrol ping), so it rejected the token (expired, or signed with " +
			"another key): " + tokenHint(c.user)
	default:
		e.unavailable = true
		e.Hint = "slurmctld does not answer `scontrol ping`: start it, or check slurm.conf"
	}
}

// describeJSONError says where and what in a body json rejected, without quoting the body.
func describeJSONError(raw []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case len(bytes.TrimSpace(raw)) == 0:
		return "empty body"
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d of %d: %v", syn.Offset, len(raw), err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("field %s: got JSON %s, want %s", field, typ.Value, jsonKind(typ.Type))
	}
	return err.Error()
}

// jsonKind names what JSON a Go type decodes from: the caller's words, not this package's types.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8,
		reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return t.Kind().String()
}

// checkName refuses names that cannot be Slurm node names (and could change the URL's meaning).
func checkName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("slurm: node name %q: %w: empty or too long", name, ErrInvalid)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("slurm: node name %q: %w: only letters, digits, '-', '_' and '.' allowed", name, ErrInvalid)
		}
	}
	return nil
}
