package slurm

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrUnauthorized: Slurm rejected the credentials (missing, malformed, expired or foreign
	// token, or a user it does not accept).
	ErrUnauthorized = errors.New("slurm rejected the credentials")
	// ErrNotFound: the node, job or partition does not exist.
	ErrNotFound = errors.New("not found in slurm")
	// ErrUnavailable: slurmrestd or slurmctld cannot be reached.
	ErrUnavailable = errors.New("slurm unavailable")
	// ErrMalformed: the answer is not the JSON this client expects.
	ErrMalformed = errors.New("malformed slurm answer")
	// ErrInvalid: the request was refused before it reached Slurm (bad node name, reason…).
	ErrInvalid = errors.New("invalid slurm request")
)

// Slurm error numbers this package interprets (slurm/slurm_errno.h).
const (
	codeUnspecified      = -1
	codeCommConnection   = 1001 // SLURM_COMMUNICATIONS_CONNECTION_ERROR
	codeCommShutdown     = 1004
	codeProtocolAuth     = 1007 // SLURM_PROTOCOL_AUTHENTICATION_ERROR
	codeCtldConnection   = 1800 // SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR
	codeCtldBackoff      = 1804
	codeInvalidPartition = 2000 // ESLURM_INVALID_PARTITION_NAME
	codeAccessDenied     = 2002 // ESLURM_ACCESS_DENIED
	codeInvalidJobID     = 2017 // ESLURM_INVALID_JOB_ID
	codeInvalidNodeName  = 2018 // ESLURM_INVALID_NODE_NAME
	codeAlreadyDone      = 2021 // ESLURM_ALREADY_DONE: "Job/step already completing or completed"
	codeAuthFirst        = 6000 // ESLURM_AUTH_CRED_INVALID …
	codeAuthLast         = 6099
)

// CodeJobHeld (ESLURM_JOB_HELD, "Job is in held state, pending scheduler release") comes with a
// successful held submission; see SubmitResult.Warnings.
const CodeJobHeld = 2042

// hintLifespan is the token lifespan (seconds) the operator hint suggests.
const hintLifespan = 86400

// SlurmError is one entry of the errors array in a slurmrestd answer. v0.0.38 names the number
// error_code, errno or error_number depending on the endpoint; all land in Code.
type SlurmError struct {
	Code        int
	Message     string // "error"
	Description string
	Source      string
}

func (e SlurmError) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.Code, e.Message)
	if e.Description != "" && e.Description != e.Message {
		fmt.Fprintf(&b, " (%s)", e.Description)
	}
	return b.String()
}

// APIError is an answer from slurmrestd that is not a success: an HTTP status other than 200,
// or Slurm errors in the body.
type APIError struct {
	Method   string
	Endpoint string // path, /slurm/v0.0.38/job/12
	Status   int    // HTTP status
	Errors   []SlurmError
	Body     string // start of a body that was not JSON
	// Hint tells the operator what to do, when the error says enough to know.
	Hint string

	unauthorized bool
	unavailable  bool
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "slurm: %s %s: HTTP %d", e.Method, e.Endpoint, e.Status)
	if len(e.Errors) > 0 {
		msgs := make([]string, len(e.Errors))
		for i, se := range e.Errors {
			msgs[i] = se.String()
		}
		fmt.Fprintf(&b, ": %s", strings.Join(msgs, "; "))
	} else if e.Body != "" {
		fmt.Fprintf(&b, ": %q", e.Body)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, ": %s", e.Hint)
	}
	return b.String()
}

// Has reports whether Slurm returned error number code.
func (e *APIError) Has(code int) bool {
	for _, se := range e.Errors {
		if se.Code == code {
			return true
		}
	}
	return false
}

// Is makes errors.Is(err, ErrUnauthorized/ErrNotFound/ErrUnavailable) work on an *APIError.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.unauthorized
	case ErrUnavailable:
		return e.unavailable
	case ErrNotFound:
		return e.Has(codeInvalidJobID) || e.Has(codeInvalidNodeName) || e.Has(codeInvalidPartition)
	}
	return false
}

// classify sets the sentinel flags and the operator hint from the status and Slurm codes.
// user names the token's user in the hint.
func (e *APIError) classify(user string) {
	switch {
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		e.unauthorized = true
	case e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable ||
		e.Status == http.StatusGatewayTimeout:
		e.unavailable = true
	}
	for _, se := range e.Errors {
		switch {
		case se.Code == codeProtocolAuth || se.Code == codeAccessDenied ||
			(se.Code >= codeAuthFirst && se.Code <= codeAuthLast):
			e.unauthorized = true
		case (se.Code >= codeCommConnection && se.Code <= codeCommShutdown) ||
			(se.Code >= codeCtldConnection && se.Code <= codeCtldBackoff):
			e.unavailable = true
		}
	}
	if e.unauthorized {
		e.Hint = tokenHint(user)
	}
}

// ambiguous reports the answer Slurm 22.05 gives both when slurmctld rejects the token and when
// it cannot be reached: HTTP 500 whose every error is -1 "Unspecified error".
func (e *APIError) ambiguous() bool {
	if e.Status != http.StatusInternalServerError || len(e.Errors) == 0 {
		return false
	}
	for _, se := range e.Errors {
		if se.Code != codeUnspecified {
			return false
		}
	}
	return true
}

func tokenHint(user string) string {
	if user == "" {
		user = "root"
	}
	return fmt.Sprintf("get a new token with `scontrol token username=%s lifespan=%d` and put it in "+
		"slurm.token_file, slurm.token or DROVER_SLURM_TOKEN", user, hintLifespan)
}

// CommandError is a failed scontrol run.
type CommandError struct {
	Args     []string // arguments after the binary (never secret)
	ExitCode int      // -1 when it did not run or was killed
	Stderr   string   // trimmed
	Err      error    // from os/exec
}

func (e *CommandError) Error() string {
	msg := e.Stderr
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("slurm: scontrol %s: exit %d: %s", strings.Join(e.Args, " "), e.ExitCode, msg)
}

func (e *CommandError) Unwrap() error { return e.Err }

// Is maps scontrol's messages to the sentinel errors.
func (e *CommandError) Is(target error) bool {
	s := strings.ToLower(e.Stderr)
	switch target {
	case ErrNotFound:
		return strings.Contains(s, "invalid node name") || strings.Contains(s, "invalid job id") ||
			strings.Contains(s, "invalid partition name")
	case ErrUnavailable:
		return strings.Contains(s, "unable to contact slurm controller") ||
			strings.Contains(s, "connection refused") ||
			(strings.Contains(s, "munge") && strings.Contains(s, "socket"))
	case ErrUnauthorized:
		return strings.Contains(s, "authentication") || strings.Contains(s, "access/permission denied")
	}
	return false
}
