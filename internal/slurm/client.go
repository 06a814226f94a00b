package slurm

import (
	"context"
	"fmt"
	"net/http"

	"github.com/drover-hpc/drover/internal/config"
)

// Client reads the cluster and controls jobs. REST implements it for OpenAPI v0.0.38
// (Slurm 22.05); an adapter for v0.0.39 and later implements the same methods.
type Client interface {
	// Ping reports the Slurm version and whether each slurmctld answers.
	Ping(ctx context.Context) (PingResult, error)
	Nodes(ctx context.Context) ([]Node, error)
	// Node returns one node; errors.Is(err, ErrNotFound) when it does not exist.
	Node(ctx context.Context, name string) (Node, error)
	Partitions(ctx context.Context) ([]Partition, error)
	// Jobs returns the jobs slurmctld still knows (finished ones for MinJobAge).
	Jobs(ctx context.Context) ([]Job, error)
	// Job returns one job; errors.Is(err, ErrNotFound) when slurmctld does not know it.
	Job(ctx context.Context, id uint32) (Job, error)
	Submit(ctx context.Context, req SubmitRequest) (SubmitResult, error)
	// Hold keeps a pending job from starting; Release lets it start.
	Hold(ctx context.Context, id uint32) error
	Release(ctx context.Context, id uint32) error
	// Cancel ends a job (SIGKILL, like scancel); cancelling a job that is already ending is not
	// an error.
	Cancel(ctx context.Context, id uint32) error
}

// NodeUpdater changes nodes; Scontrol implements it.
type NodeUpdater interface {
	// Drain stops new jobs from starting on node; running jobs go on. reason is required.
	Drain(ctx context.Context, node, reason string) error
	// Resume undoes Drain (and a DOWN state); resuming a node that is neither is not an error.
	Resume(ctx context.Context, node string) error
	// SetWeight sets the node's scheduling weight: Slurm prefers lower weights.
	SetWeight(ctx context.Context, node string, weight int) error
	// SetAddr points slurmctld at the node's new address (and hostname, when not empty).
	SetAddr(ctx context.Context, node, addr, hostname string) error
}

// ControllerProber tells whether slurmctld answers; *Scontrol is one. REST asks it when
// slurmrestd's answer cannot tell a rejected token from an unreachable slurmctld.
type ControllerProber interface {
	Ping(ctx context.Context) (PingResult, error)
}

var (
	_ Client           = (*REST)(nil)
	_ NodeUpdater      = (*Scontrol)(nil)
	_ ControllerProber = (*Scontrol)(nil)
)

// Option adjusts a REST client.
type Option func(*REST)

// WithHTTPClient sends requests through hc (its Timeout adds to config.Slurm.Timeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *REST) { c.http = hc } }

// WithControllerProber replaces the `scontrol ping` REST runs (by default, when
// config.Slurm.Scontrol is set) to interpret slurmrestd's ambiguous "Unspecified error" answer;
// nil turns the probe off.
func WithControllerProber(p ControllerProber) Option { return func(c *REST) { c.probe = p } }

// New returns the Client for cfg.APIVersion. Only v0.0.38 exists yet.
func New(cfg config.Slurm, opts ...Option) (Client, error) {
	switch cfg.APIVersion {
	case "", APIVersion38:
		return NewREST(cfg, opts...)
	}
	return nil, fmt.Errorf("slurm.api_version %q: this drover speaks %s (Slurm 22.05) only", cfg.APIVersion, APIVersion38)
}
