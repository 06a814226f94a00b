package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/drover-hpc/drover/scheduler"
)

// PlaceRequest is the body of POST /v1/place: one vnode to place.
type PlaceRequest struct {
	VNode      string          `json:"vnode"`
	JobID      int64           `json:"job_id,omitempty"`
	CPUs       int             `json:"cpus"`
	MemoryMiB  int64           `json:"memory_mib"`
	Constraint string          `json:"constraint,omitempty"`
	TimeLimitS int64           `json:"time_limit_s,omitempty"` // 0 = unlimited
	Hints      scheduler.Hints `json:"hints,omitzero"`
	JobHosts   []string        `json:"job_hosts,omitempty"`
	// Unreachable names hypervisors whose libvirt the caller could not reach: they cannot take
	// the VM whatever the database says.
	Unreachable []string `json:"unreachable,omitempty"`
}

// Status is the body of GET /v1/status.
type Status struct {
	Instance string    `json:"instance"`
	Leader   bool      `json:"leader"`
	Hosts    int       `json:"hosts"`
	ViewAt   time.Time `json:"view_at,omitzero"`
	ViewErr  string    `json:"view_error,omitempty"`
}

// apiError is every error body: what was wrong and what to do.
type apiError struct {
	Error string `json:"error"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// Handler returns the API's routes. Every route but /healthz needs the bearer token.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "leader": s.Leading()})
	})
	mux.HandleFunc("GET /v1/status", s.auth(s.status))
	mux.HandleFunc("GET /v1/hosts", s.auth(s.hostsView))
	mux.HandleFunc("POST /v1/place", s.auth(s.place))
	return mux
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="drover"`)
			writeJSON(w, http.StatusUnauthorized, apiError{"missing or wrong bearer token: use the token in server.token_file"})
			return
		}
		h(w, r)
	}
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	st := Status{Instance: s.cfg.Instance, Leader: s.Leading(), Hosts: len(s.hosts), ViewAt: s.readAt}
	if s.readErr != nil {
		st.ViewErr = s.readErr.Error()
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) hostsView(w http.ResponseWriter, r *http.Request) {
	hosts, _, err := s.view(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{"fleet view: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, hosts)
}

// place decides where a vnode goes. Only the leader decides: a follower answers 503 so the
// caller retries (another server, or later).
func (s *Server) place(w http.ResponseWriter, r *http.Request) {
	if !s.Leading() {
		writeJSON(w, http.StatusServiceUnavailable, apiError{"this server is not the leader: retry, or ask the leading drover server"})
		return
	}
	var req PlaceRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"place: " + err.Error()})
		return
	}
	if err := req.validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"place: " + err.Error()})
		return
	}
	hosts, _, err := s.view(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{"fleet view: " + err.Error()})
		return
	}
	if len(req.Unreachable) > 0 {
		hosts = slices.Clone(hosts)
		for i := range hosts {
			if slices.Contains(req.Unreachable, hosts[i].Name) {
				hosts[i].Reachable = false
			}
		}
	}
	d := s.placer.Place(req.request(), hosts)
	s.log.Info().Str("vnode", req.VNode).Int64("job", req.JobID).Str("host", d.Host).Str("why", d.Reason).Msg("placement")
	writeJSON(w, http.StatusOK, d)
}

func (p PlaceRequest) validate() error {
	var bad []string
	if !nameRE.MatchString(p.VNode) {
		bad = append(bad, fmt.Sprintf("vnode %q is not a node name", p.VNode))
	}
	if p.CPUs <= 0 {
		bad = append(bad, fmt.Sprintf("cpus must be positive, got %d", p.CPUs))
	}
	if p.MemoryMiB <= 0 {
		bad = append(bad, fmt.Sprintf("memory_mib must be positive, got %d", p.MemoryMiB))
	}
	if p.JobID < 0 || p.TimeLimitS < 0 {
		bad = append(bad, "job_id and time_limit_s must not be negative")
	}
	for _, h := range append(slices.Clone(p.JobHosts), p.Unreachable...) {
		if !nameRE.MatchString(h) {
			bad = append(bad, fmt.Sprintf("hypervisor %q is not a host name", h))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

func (p PlaceRequest) request() scheduler.Request {
	return scheduler.Request{VNode: p.VNode, JobID: p.JobID, CPUs: p.CPUs, MemoryMiB: p.MemoryMiB,
		Constraint: p.Constraint, TimeLimit: time.Duration(p.TimeLimitS) * time.Second,
		JobHosts: p.JobHosts, Hints: p.Hints}
}

// decodeStrict decodes one JSON object, refusing unknown fields, trailing data and big bodies.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	if dec.More() {
		return errors.New("bad JSON body: more than one object")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
