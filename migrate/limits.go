package migrate

import (
	"errors"
	"fmt"
	"strings"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/store"
)

// Defaults for the concurrency limits the configuration leaves at zero.
const (
	defaultMaxPerHypervisor = 1
	defaultMaxConcurrent    = 2
)

// ErrLimit: a concurrency limit refused the migration; the error is a *LimitError naming the
// limit and the migrations that hold it.
var ErrLimit = errors.New("migration limit reached")

// LimitError is a migration refused by migration.max_per_hypervisor or migration.max_concurrent.
type LimitError struct {
	Limit   string // the configuration key
	Max     int
	Host    string             // the hypervisor at its limit; "" for the cluster-wide limit
	Holders []store.Unfinished // the unfinished migrations that count against it
}

func (e *LimitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s is %d and ", ErrLimit, e.Limit, e.Max)
	if e.Host != "" {
		fmt.Fprintf(&b, "%s already takes part in %d", e.Host, len(e.Holders))
	} else {
		fmt.Fprintf(&b, "%d are under way", len(e.Holders))
	}
	for i, h := range e.Holders {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%smigration %d of %s (%s → %s, %s, owner %s)", sep, h.ID, h.VNode, h.Src, h.Dst,
			strings.ReplaceAll(h.Phase, "_", " "), orUnknown(h.Owner))
	}
	return b.String()
}

// Is makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// checkLimits decides whether a migration from src to dst may start beside the unfinished ones:
// first each end's per-hypervisor limit (outgoing and incoming migrations count alike), then the
// cluster-wide one. Zero limits take the defaults.
func checkLimits(active []store.Unfinished, src, dst string, cfg config.Migration) *LimitError {
	perHost, total := cfg.MaxPerHypervisor, cfg.MaxConcurrent
	if perHost <= 0 {
		perHost = defaultMaxPerHypervisor
	}
	if total <= 0 {
		total = defaultMaxConcurrent
	}
	for _, hv := range []string{src, dst} {
		var on []store.Unfinished
		for _, a := range active {
			if a.Src == hv || a.Dst == hv {
				on = append(on, a)
			}
		}
		if len(on) >= perHost {
			return &LimitError{Limit: "migration.max_per_hypervisor", Max: perHost, Host: hv, Holders: on}
		}
	}
	if len(active) >= total {
		return &LimitError{Limit: "migration.max_concurrent", Max: total, Holders: active}
	}
	return nil
}
