package migrate

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/drover-hpc/drover/internal/config"
)

// defaultTimeout is the transfer timeout when the configuration leaves it at zero.
const defaultTimeout = 10 * time.Minute

// Reasons a migration may be journaled with (the migrations.reason column).
var reasons = map[string]bool{"manual": true, "evacuation": true, "rebalance": true, "consolidation": true, "drain": true}

// nameRE is what the schema accepts for vnode and hypervisor names.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Request asks for one migration. Tuning fields left nil take the executor's configuration.
type Request struct {
	VNode  string // the vnode to move
	To     string // the destination hypervisor's name
	Reason string // manual (the default), evacuation, rebalance, consolidation or drain

	MaxDowntime   *time.Duration // the guest's pause at switch-over; 0: libvirt's default (300 ms)
	BandwidthMiBs *int           // 0: unlimited
	AutoConverge  *bool
	PostCopyAfter *time.Duration // 0: never switch to post-copy
	Timeout       *time.Duration // abort the transfer if it runs longer
	// VerifyFor is how long the guest must keep running on the destination; 0 is the quick
	// check: running there and its vCPUs advancing between two readings.
	VerifyFor *time.Duration

	// SerialLog is the path of the vnode's console log as this process sees it. When set and
	// readable, verification also wants new console lines after switch-over.
	SerialLog string
}

// settings is the configuration with r's overrides applied and zero defaults filled in, or an
// error naming every value that is wrong.
func settings(cfg config.Migration, r Request) (config.Migration, error) {
	s := cfg
	if r.MaxDowntime != nil {
		s.MaxDowntime = *r.MaxDowntime
	}
	if r.BandwidthMiBs != nil {
		s.BandwidthMiBs = *r.BandwidthMiBs
	}
	if r.AutoConverge != nil {
		s.AutoConverge = *r.AutoConverge
	}
	if r.PostCopyAfter != nil {
		s.PostCopyAfter = *r.PostCopyAfter
	}
	if r.Timeout != nil {
		s.Timeout = *r.Timeout
	}
	if r.VerifyFor != nil {
		s.VerifyFor = *r.VerifyFor
	}
	// zero in the configuration means "not set"; a request must say what it wants
	if s.Timeout == 0 && r.Timeout == nil {
		s.Timeout = defaultTimeout
	}
	var bad []string
	if s.MaxDowntime < 0 {
		bad = append(bad, fmt.Sprintf("max downtime %v is negative", s.MaxDowntime))
	}
	if s.BandwidthMiBs < 0 {
		bad = append(bad, fmt.Sprintf("bandwidth %d MiB/s is negative", s.BandwidthMiBs))
	}
	if s.PostCopyAfter < 0 {
		bad = append(bad, fmt.Sprintf("post-copy delay %v is negative", s.PostCopyAfter))
	}
	if s.Timeout <= 0 {
		bad = append(bad, fmt.Sprintf("timeout %v must be positive", s.Timeout))
	}
	if s.VerifyFor < 0 {
		bad = append(bad, fmt.Sprintf("verification time %v is negative", s.VerifyFor))
	}
	if len(bad) > 0 {
		return s, fmt.Errorf("%w: %s", ErrBadRequest, strings.Join(bad, "; "))
	}
	return s, nil
}

// checkRequest validates names and the reason; it returns the reason to journal.
func checkRequest(r Request) (string, error) {
	var bad []string
	if !nameRE.MatchString(r.VNode) {
		bad = append(bad, fmt.Sprintf("vnode name %q is not a valid name", r.VNode))
	}
	if r.To == "" {
		bad = append(bad, "no destination hypervisor given")
	}
	reason := r.Reason
	if reason == "" {
		reason = "manual"
	}
	if !reasons[reason] {
		bad = append(bad, fmt.Sprintf("reason %q is not one of manual, evacuation, rebalance, consolidation, drain", reason))
	}
	if len(bad) > 0 {
		return "", fmt.Errorf("%w: %s", ErrBadRequest, strings.Join(bad, "; "))
	}
	return reason, nil
}

// params is what the journal records about a migration's tuning.
func params(s config.Migration, uri, serial string) map[string]any {
	return map[string]any{
		"max_downtime_ms":    s.MaxDowntime.Milliseconds(),
		"bandwidth_mibs":     s.BandwidthMiBs,
		"auto_converge":      s.AutoConverge,
		"post_copy_after_ms": s.PostCopyAfter.Milliseconds(),
		"post_copy_stuck":    s.PostCopyWhenStuck,
		"timeout_action":     s.TimeoutAction,
		"timeout_ms":         s.Timeout.Milliseconds(),
		"verify_for_ms":      s.VerifyFor.Milliseconds(),
		"quiet_console":      s.QuietConsole,
		"tls":                s.TLS,
		"migration_uri":      uri,
		"serial_log":         serial,
	}
}
