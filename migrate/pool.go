package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/virt"
)

// Conns gives the executor a libvirt connection per hypervisor.
type Conns interface {
	// Hypervisors lists every hypervisor drover knows, in configuration order.
	Hypervisors() []config.Hypervisor
	// Conn returns a connection to the hypervisor called name, connecting when needed. An unknown
	// name gives an error matching ErrUnknownHypervisor.
	Conn(ctx context.Context, name string) (*virt.Conn, error)
	// Broken reports that c, from Conn(name), failed with virt.ErrUnreachable: the next Conn for
	// name connects again.
	Broken(name string, c *virt.Conn)
}

var _ Conns = (*Pool)(nil)

// defaultConnectTimeout bounds a connection attempt when NewPool is given none.
const defaultConnectTimeout = 5 * time.Second

// Pool connects to each hypervisor the first time it is asked for, keeps the connection, and
// reconnects after one is reported broken. It is safe for concurrent use; a slow hypervisor
// delays only the callers that asked for it.
type Pool struct {
	hvs     []config.Hypervisor
	timeout time.Duration

	mu      sync.Mutex
	closed  bool
	entries map[string]*poolEntry
}

type poolEntry struct {
	lock chan struct{} // held (filled) while connecting, so one caller connects and the others wait
	conn *virt.Conn    // guarded by lock
}

// NewPool returns a pool over hypervisors; connectTimeout (5 s when not positive) bounds each
// connection attempt.
func NewPool(hypervisors []config.Hypervisor, connectTimeout time.Duration) *Pool {
	if connectTimeout <= 0 {
		connectTimeout = defaultConnectTimeout
	}
	p := &Pool{hvs: append([]config.Hypervisor(nil), hypervisors...), timeout: connectTimeout,
		entries: map[string]*poolEntry{}}
	for _, h := range p.hvs {
		p.entries[h.Name] = &poolEntry{lock: make(chan struct{}, 1)}
	}
	return p
}

// Hypervisors lists the pool's hypervisors in configuration order.
func (p *Pool) Hypervisors() []config.Hypervisor { return append([]config.Hypervisor(nil), p.hvs...) }

func (p *Pool) hypervisor(name string) (config.Hypervisor, bool) {
	for _, h := range p.hvs {
		if h.Name == name {
			return h, true
		}
	}
	return config.Hypervisor{}, false
}

// Conn returns the pool's connection to name, connecting first if there is none. It waits at most
// the connect timeout, and never longer than ctx allows.
func (p *Pool) Conn(ctx context.Context, name string) (*virt.Conn, error) {
	hv, ok := p.hypervisor(name)
	if !ok {
		return nil, fmt.Errorf("%w %q (configured: %s)", ErrUnknownHypervisor, name, names(p.hvs))
	}
	p.mu.Lock()
	closed, e := p.closed, p.entries[name]
	p.mu.Unlock()
	if closed {
		return nil, errors.New("connection pool is closed")
	}
	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("connect to %s: %w", name, ctx.Err())
	}
	defer func() { <-e.lock }()
	if e.conn != nil {
		return e.conn, nil
	}
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	c, err := virt.Connect(cctx, hv.Name, hv.URI)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.closed { // closed while we were connecting: do not leak the connection
		p.mu.Unlock()
		_ = c.Close()
		return nil, errors.New("connection pool is closed")
	}
	e.conn = c
	p.mu.Unlock()
	return c, nil
}

// Broken forgets c if it is still the pool's connection to name, and closes it in the background.
func (p *Pool) Broken(name string, c *virt.Conn) {
	p.mu.Lock()
	e := p.entries[name]
	p.mu.Unlock()
	if e == nil || c == nil {
		return
	}
	e.lock <- struct{}{}
	if e.conn == c {
		e.conn = nil
	}
	<-e.lock
	go func() { _ = c.Close() }()
}

// Close closes every connection; Conn fails afterwards. It waits for connection attempts under way.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	var errs []error
	for _, h := range p.hvs {
		e := p.entries[h.Name]
		e.lock <- struct{}{}
		c := e.conn
		e.conn = nil
		<-e.lock
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// names lists the hypervisors' names for messages: "hv1, hv2".
func names(hvs []config.Hypervisor) string {
	if len(hvs) == 0 {
		return "none"
	}
	ns := make([]string, len(hvs))
	for i, h := range hvs {
		ns[i] = h.Name
	}
	return strings.Join(ns, ", ")
}
