package slurm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/drover-hpc/drover/internal/config"
)

// maxWeight is the largest node weight scontrol accepts (22.05: 4294967280).
const maxWeight = 4294967280

// maxReason bounds a drain reason; Slurm shows it in sinfo and scontrol.
const maxReason = 256

// Scontrol changes nodes and pings slurmctld by running scontrol. Every value it passes is
// validated and goes in its own argument behind a fixed Key=, so nothing can add arguments.
type Scontrol struct {
	bin     string
	conf    string
	timeout time.Duration
}

// NewScontrol runs cfg.Scontrol (default "scontrol" from PATH) with SLURM_CONF=cfg.Conf (when
// set) and without SLURM_JWT; each run is bounded by cfg.Timeout when it is positive.
func NewScontrol(cfg config.Slurm) *Scontrol {
	bin := cfg.Scontrol
	if bin == "" {
		bin = "scontrol"
	}
	return &Scontrol{bin: bin, conf: cfg.Conf, timeout: cfg.Timeout}
}

// Drain implements NodeUpdater.
func (s *Scontrol) Drain(ctx context.Context, node, reason string) error {
	if err := checkName(node); err != nil {
		return err
	}
	reason = strings.TrimSpace(reason)
	if err := checkReason(reason); err != nil {
		return err
	}
	_, err := s.run(ctx, "update", "NodeName="+node, "State=DRAIN", "Reason="+reason)
	return err
}

// Down marks a node DOWN with a reason: what Slurm's power-saving guide prescribes for a node
// that cannot be resumed, so its jobs are requeued at once instead of after ResumeTimeout.
func (s *Scontrol) Down(ctx context.Context, node, reason string) error {
	if err := checkName(node); err != nil {
		return err
	}
	reason = strings.TrimSpace(reason)
	if err := checkReason(reason); err != nil {
		return err
	}
	_, err := s.run(ctx, "update", "NodeName="+node, "State=DOWN", "Reason="+reason)
	return err
}

// Resume implements NodeUpdater.
func (s *Scontrol) Resume(ctx context.Context, node string) error {
	if err := checkName(node); err != nil {
		return err
	}
	_, err := s.run(ctx, "update", "NodeName="+node, "State=RESUME")
	var cmdErr *CommandError
	if errors.As(err, &cmdErr) && strings.Contains(strings.ToLower(cmdErr.Stderr), "invalid node state specified") {
		// 22.05 refuses to resume a node that is neither drained nor down: already resumed
		return nil
	}
	return err
}

// SetWeight implements NodeUpdater.
func (s *Scontrol) SetWeight(ctx context.Context, node string, weight int) error {
	if err := checkName(node); err != nil {
		return err
	}
	if weight < 0 || weight > maxWeight {
		return fmt.Errorf("slurm: node %s weight %d: %w: want 0..%d", node, weight, ErrInvalid, maxWeight)
	}
	_, err := s.run(ctx, "update", "NodeName="+node, "Weight="+strconv.Itoa(weight))
	return err
}

// SetAddr implements NodeUpdater. addr is an IP address or a host name.
func (s *Scontrol) SetAddr(ctx context.Context, node, addr, hostname string) error {
	if err := checkName(node); err != nil {
		return err
	}
	if net.ParseIP(addr) == nil && checkHostname(addr) != nil {
		return fmt.Errorf("slurm: node %s address %q: %w: not an IP address or host name", node, addr, ErrInvalid)
	}
	args := []string{"update", "NodeName=" + node, "NodeAddr=" + addr}
	if hostname != "" {
		if err := checkHostname(hostname); err != nil {
			return fmt.Errorf("slurm: node %s hostname %q: %w", node, hostname, err)
		}
		args = append(args, "NodeHostname="+hostname)
	}
	_, err := s.run(ctx, args...)
	return err
}

// Ping reports whether slurmctld answers `scontrol ping`, and the Slurm version of scontrol.
// A controller that is down is a result (Up false), not an error.
func (s *Scontrol) Ping(ctx context.Context) (PingResult, error) {
	v, err := s.Version(ctx)
	if err != nil {
		return PingResult{}, err
	}
	out, err := s.run(ctx, "ping")
	ctrls := parsePing(out)
	if len(ctrls) == 0 {
		if err != nil {
			return PingResult{Version: v}, err
		}
		return PingResult{Version: v}, fmt.Errorf("slurm: scontrol ping: %w: no \"Slurmctld(...) at HOST is UP|DOWN\" line in %q",
			ErrMalformed, truncate(out, 200))
	}
	return PingResult{Version: v, Controllers: ctrls}, nil
}

// Version is the version scontrol reports (`scontrol --version`: "slurm-wlm 22.05.8").
func (s *Scontrol) Version(ctx context.Context) (Version, error) {
	out, err := s.run(ctx, "--version")
	if err != nil {
		return Version{}, err
	}
	fields := strings.Fields(out)
	if len(fields) == 0 {
		return Version{}, fmt.Errorf("slurm: scontrol --version: %w: empty output", ErrMalformed)
	}
	v, err := ParseVersion(fields[len(fields)-1])
	if err != nil {
		return Version{}, fmt.Errorf("slurm: scontrol --version: %w: %w", ErrMalformed, err)
	}
	return v, nil
}

// parsePing reads lines like "Slurmctld(primary) at vm is UP".
func parsePing(out string) []Controller {
	var ctrls []Controller
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 || !strings.HasPrefix(f[0], "Slurmctld(") || f[1] != "at" || f[3] != "is" {
			continue
		}
		mode := strings.TrimSuffix(strings.TrimPrefix(f[0], "Slurmctld("), ")")
		ctrls = append(ctrls, Controller{Host: f[2], Mode: mode, Up: f[4] == "UP"})
	}
	return ctrls
}

// run executes scontrol with args and returns its standard output; a failure is a
// *CommandError carrying the trimmed standard error.
func (s *Scontrol) run(ctx context.Context, args ...string) (string, error) {
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	// "--" ends option parsing: no later argument can be read as an option
	argv := args
	if args[0] != "--version" {
		argv = append([]string{"--"}, args...)
	}
	cmd := exec.CommandContext(ctx, s.bin, argv...)
	cmd.Env = s.env()
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		ce := &CommandError{Args: args, ExitCode: -1, Stderr: strings.TrimSpace(stderr.String()), Err: err}
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			ce.ExitCode = exitErr.ExitCode()
		}
		if ctx.Err() != nil {
			ce.Err = fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
		if ce.Stderr == "" {
			// scontrol prints some refusals ("No changes specified") on stdout
			ce.Stderr = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), ce
	}
	return stdout.String(), nil
}

// env is this process's environment without SLURM_JWT (with it, scontrol would act as the
// token's user) and with SLURM_CONF pointing at the configured slurm.conf.
func (s *Scontrol) env() []string {
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "SLURM_JWT" || (s.conf != "" && k == "SLURM_CONF") {
			continue
		}
		env = append(env, kv)
	}
	if s.conf != "" {
		env = append(env, "SLURM_CONF="+s.conf)
	}
	return env
}

func checkReason(reason string) error {
	if reason == "" {
		return fmt.Errorf("slurm: drain reason: %w: Slurm requires one", ErrInvalid)
	}
	if len(reason) > maxReason {
		return fmt.Errorf("slurm: drain reason: %w: longer than %d bytes", ErrInvalid, maxReason)
	}
	for _, r := range reason {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("slurm: drain reason %q: %w: only printable characters allowed", reason, ErrInvalid)
		}
	}
	return nil
}

// checkHostname accepts RFC 1123 host names (labels of letters, digits and '-').
func checkHostname(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("%w: empty or too long host name", ErrInvalid)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%w: bad host name label %q", ErrInvalid, label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%w: %q in host name", ErrInvalid, r)
			}
		}
	}
	return nil
}
