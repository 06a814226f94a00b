package slurm

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/drover-hpc/drover/internal/config"
)

// tokenSource holds the JWT: the configured value, or the trimmed contents of the token file,
// read again whenever the file changes (scripts/testbed and operators replace it in place).
// Nothing here ever formats the token into an error.
type tokenSource struct {
	fixed string // cfg.Token: wins over the file
	file  string
	user  string
	now   func() time.Time

	mu      sync.Mutex
	token   string
	exp     time.Time // zero when the token carries no exp claim
	modTime time.Time
	size    int64
}

func newTokenSource(cfg config.Slurm, now func() time.Time) (*tokenSource, error) {
	ts := &tokenSource{fixed: strings.TrimSpace(cfg.Token), file: cfg.TokenFile, user: cfg.User, now: now}
	if ts.fixed == "" && ts.file == "" {
		return nil, fmt.Errorf("slurm: no token configured: %s: %w", tokenHint(cfg.User), ErrUnauthorized)
	}
	// the shape is checked now; expiry at each request (the file may be replaced meanwhile)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.load(); err != nil {
		return nil, err
	}
	return ts, nil
}

// get returns a token that is well-formed and not expired, or an error wrapping ErrUnauthorized
// (or the file's read error).
func (ts *tokenSource) get() (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.load(); err != nil {
		return "", err
	}
	if !ts.exp.IsZero() && !ts.now().Before(ts.exp) {
		return "", fmt.Errorf("slurm: the token %sexpired at %s: %s: %w",
			ts.origin(), ts.exp.UTC().Format(time.RFC3339), tokenHint(ts.user), ErrUnauthorized)
	}
	return ts.token, nil
}

func (ts *tokenSource) origin() string {
	if ts.fixed != "" {
		return "in slurm.token "
	}
	return "in " + ts.file + " "
}

// load (re)reads the token when needed; ts.mu is held.
func (ts *tokenSource) load() error {
	raw := ts.fixed
	if raw == "" {
		st, err := os.Stat(ts.file)
		if err != nil {
			// no readable token is a credentials problem, whatever the file system says
			return fmt.Errorf("slurm: slurm.token_file %s: %v: %s: %w", ts.file, errors.Unwrap(err), tokenHint(ts.user), ErrUnauthorized)
		}
		if ts.token != "" && st.ModTime().Equal(ts.modTime) && st.Size() == ts.size {
			return nil
		}
		b, err := config.Secret("", ts.file, "slurm.token_file")
		if err != nil {
			return fmt.Errorf("slurm: %v: %s: %w", err, tokenHint(ts.user), ErrUnauthorized)
		}
		if b == "" {
			return fmt.Errorf("slurm: %s is empty: %s: %w", ts.file, tokenHint(ts.user), ErrUnauthorized)
		}
		ts.modTime, ts.size = st.ModTime(), st.Size()
		raw = strings.TrimPrefix(b, "SLURM_JWT=") // the file may hold scontrol token's raw output
	} else if ts.token != "" {
		return nil
	}
	exp, err := jwtExpiry(raw)
	if err != nil {
		ts.token = ""
		return fmt.Errorf("slurm: the token %sis not a JWT (%v): %s: %w", ts.origin(), err, tokenHint(ts.user), ErrUnauthorized)
	}
	ts.token, ts.exp = raw, exp
	return nil
}

// jwtExpiry checks that tok has the shape of a JWT and returns its exp claim (zero if absent).
// The signature is slurmctld's business; this only catches tokens that cannot work. Its errors
// never quote the token.
func jwtExpiry(tok string) (time.Time, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, fmt.Errorf("%d dot-separated parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, errors.New("payload is not base64url")
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return time.Time{}, errors.New("payload is not a JSON object")
	}
	if claims.Exp == nil {
		return time.Time{}, nil
	}
	f, err := claims.Exp.Float64()
	if err != nil {
		return time.Time{}, errors.New("exp claim is not a number")
	}
	return time.Unix(int64(f), 0), nil
}
