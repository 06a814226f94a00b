package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drover-hpc/drover/internal/bmc"
	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/virt"
	"github.com/drover-hpc/drover/kpi"
	"github.com/drover-hpc/drover/sql/queries"
)

// BMC is a hypervisor's BMC that the agent connects to at its first poll, and again at the
// next poll after a failed one, so that a BMC down when the agent starts is read once it is
// back. It is a kpi.SensorReader.
type BMC struct {
	cfg config.BMC

	mu sync.Mutex
	c  *bmc.Client
}

var _ kpi.SensorReader = (*BMC)(nil)

// NewBMC returns a BMC reader for cfg; nothing is dialled yet.
func NewBMC(cfg config.BMC) *BMC { return &BMC{cfg: cfg} }

// Sensors polls the BMC, dialling it first when there is no session.
func (b *BMC) Sensors(ctx context.Context) ([]bmc.Sensor, error) {
	b.mu.Lock()
	c := b.c
	b.mu.Unlock()
	if c == nil {
		var err error
		if c, err = bmc.Dial(ctx, b.cfg); err != nil {
			return nil, err
		}
		b.mu.Lock()
		b.c = c
		b.mu.Unlock()
	}
	return c.Sensors(ctx)
}

// Close ends the BMC session, if any.
func (b *BMC) Close(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c == nil {
		return nil
	}
	err := b.c.Close(ctx)
	b.c = nil
	return err
}

// Libvirt is a hypervisor's libvirtd that the agent connects to at its first read, and again
// after the connection broke (virt.ErrUnreachable). It is a kpi.DomainStatsReader.
type Libvirt struct {
	name, uri string

	mu sync.Mutex
	c  *virt.Conn
}

var (
	_ kpi.DomainStatsReader = (*Libvirt)(nil)
	_ kpi.DirtyRateReader   = (*Libvirt)(nil)
	_ kpi.JobReader         = (*Libvirt)(nil)
)

// NewLibvirt returns a libvirt reader for the hypervisor name at uri; nothing is connected yet.
func NewLibvirt(name, uri string) *Libvirt { return &Libvirt{name: name, uri: uri} }

// Conn returns the connection, connecting first when there is none.
func (l *Libvirt) Conn(ctx context.Context) (*virt.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		return l.c, nil
	}
	c, err := virt.Connect(ctx, l.name, l.uri)
	if err != nil {
		return nil, err
	}
	l.c = c
	return c, nil
}

// DomainStats reads the domains' statistics.
func (l *Libvirt) DomainStats(ctx context.Context, names ...string) ([]virt.DomainStats, error) {
	return call(ctx, l, func(c *virt.Conn) ([]virt.DomainStats, error) { return c.DomainStats(ctx, names...) })
}

// StartDirtyRateCalc starts a dirty-rate calculation on a domain.
func (l *Libvirt) StartDirtyRateCalc(ctx context.Context, name string, period time.Duration) error {
	_, err := call(ctx, l, func(c *virt.Conn) (struct{}, error) { return struct{}{}, c.StartDirtyRateCalc(ctx, name, period) })
	return err
}

// DirtyRates reads the domains' dirty-rate calculations.
func (l *Libvirt) DirtyRates(ctx context.Context, names ...string) ([]virt.DirtyRate, error) {
	return call(ctx, l, func(c *virt.Conn) ([]virt.DirtyRate, error) { return c.DirtyRates(ctx, names...) })
}

// DomainStatus reads a domain's state and job: the libvirt collector starts no dirty-rate
// calculation on a domain a migration runs on.
func (l *Libvirt) DomainStatus(ctx context.Context, name string) (virt.DomainStatus, error) {
	return call(ctx, l, func(c *virt.Conn) (virt.DomainStatus, error) { return c.DomainStatus(ctx, name) })
}

// call runs f on the connection, connecting first when there is none, and drops the connection
// when f found it broken.
func call[T any](ctx context.Context, l *Libvirt, f func(*virt.Conn) (T, error)) (T, error) {
	c, err := l.Conn(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := f(c)
	if errors.Is(err, virt.ErrUnreachable) {
		l.drop(c)
	}
	return v, err
}

func (l *Libvirt) drop(c *virt.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == c {
		_ = c.Close()
		l.c = nil
	}
}

// Close closes the connection, if any.
func (l *Libvirt) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == nil {
		return nil
	}
	err := l.c.Close()
	l.c = nil
	return err
}

// ErrUnknownHost: the agent's host is not (yet) a row of the hypervisors table.
var ErrUnknownHost = errors.New("host not registered")

// CheckHost checks that host is a row of the hypervisors table, as the agent's batches must
// name one; an error matching ErrUnknownHost says it is not.
func CheckHost(ctx context.Context, pool *pgxpool.Pool, host string) error {
	q, err := queries.Load()
	if err != nil {
		return err
	}
	var id int32
	err = pool.QueryRow(ctx, q.Get("IngestHostID"), host).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: host %q is not in the hypervisors table: add it to hypervisors in drover's configuration "+
			"(the server registers them), or set agent.host (--host) to the name it has there", ErrUnknownHost, host)
	}
	if err != nil {
		return fmt.Errorf("look up host %q in the hypervisors table: %w", host, err)
	}
	return nil
}
