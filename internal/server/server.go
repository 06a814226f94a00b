package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/fleet"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/scheduler"
)

// Config is what a Server needs.
type Config struct {
	Listen string // host:port of the HTTP API
	// Token authenticates API clients (Authorization: Bearer <token>). It must not be empty: the
	// API changes where VMs run.
	Token string
	// Refresh is the period of the fleet view's refresh; health events refresh it at once too.
	Refresh time.Duration
	// MaxViewAge: a placement request reads the database again when the view is older.
	MaxViewAge time.Duration
	Fleet      fleet.Options // thermal bounds and trouble window of the snapshot
	Instance   string        // this server's name in logs and answers; default host:pid
	// Prober, when set, is asked every ProbeInterval for each hypervisor's capacity and
	// reachability (libvirt).
	Prober        Prober
	ProbeInterval time.Duration
	// Control, when set, runs the control loop (evacuation, rebalancing) while this server leads.
	Control *Controller
}

// Defaults of Config's zero fields.
const (
	DefaultRefresh    = 5 * time.Second
	DefaultMaxViewAge = time.Second
)

// Server is `drover server`.
type Server struct {
	cfg    Config
	pool   *pgxpool.Pool
	store  *store.Store
	placer scheduler.Placer
	prober Prober
	log    zerolog.Logger
	lead   *Leadership

	mu      sync.Mutex
	hosts   []scheduler.Host
	readAt  time.Time
	readErr error
	// unreachable: hosts the last probe could not reach
	unreachable map[string]bool
	missing     map[string]bool // vnodes whose VM the last audit found on no hypervisor

	addr chan string // the address the API listens on, once
}

// New returns a server deciding with placer.
func New(cfg Config, pool *pgxpool.Pool, placer scheduler.Placer, log zerolog.Logger) (*Server, error) {
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, errors.New("server: no API token: set server.token_file (or server.token / DROVER_SERVER_TOKEN)")
	}
	if cfg.Listen == "" {
		return nil, errors.New("server: server.listen is empty: give host:port, e.g. 127.0.0.1:7480")
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.MaxViewAge <= 0 {
		cfg.MaxViewAge = DefaultMaxViewAge
	}
	if cfg.Instance == "" {
		h, _ := os.Hostname()
		cfg.Instance = fmt.Sprintf("%s:%d", h, os.Getpid())
	}
	log = log.With().Str("instance", cfg.Instance).Logger()
	return &Server{cfg: cfg, pool: pool, store: store.New(pool), placer: placer, prober: cfg.Prober, log: log,
		lead: NewLeadership(pool, 0, log), addr: make(chan string, 1)}, nil
}

// Leading says whether this server holds the leader lock.
func (s *Server) Leading() bool { return s.lead.Leading() }

// Addr returns the API's address once it listens (for tests using port 0).
func (s *Server) Addr(ctx context.Context) (string, error) {
	select {
	case a := <-s.addr:
		s.addr <- a
		return a, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Run serves until ctx ends: the API, leader election, and the view's refresh.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w (is another drover server running? change server.listen)", s.cfg.Listen, err)
	}
	s.addr <- ln.Addr().String()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(3)
	if c := s.cfg.Control; c != nil {
		wg.Add(1)
		go func() { defer wg.Done(); c.run(ctx, s.Leading, s.lead.Changed(), s.refresh) }()
	}
	go func() { defer wg.Done(); errc <- s.lead.Run(ctx) }()
	go func() { defer wg.Done(); errc <- s.watch(ctx) }()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		errc <- srv.Shutdown(sctx)
	}()
	s.log.Info().Str("listen", ln.Addr().String()).Msg("drover server up")
	err = srv.Serve(ln)
	cancel()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// watch refreshes the view every Refresh and whenever a health event is NOTIFYed.
func (s *Server) watch(ctx context.Context) error {
	events := make(chan struct{}, 1)
	go s.listen(ctx, events)
	t := time.NewTicker(s.cfg.Refresh)
	defer t.Stop()
	var probed time.Time
	for {
		if time.Since(probed) >= s.cfg.ProbeInterval {
			s.probe(ctx)
			probed = time.Now()
		}
		if _, err := s.refresh(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("fleet view refresh")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-events:
		}
	}
}

// listen LISTENs on drover_health and signals events; it reconnects after a failure.
func (s *Server) listen(ctx context.Context, events chan<- struct{}) {
	for ctx.Err() == nil {
		err := func() error {
			c, err := s.pool.Acquire(ctx)
			if err != nil {
				return err
			}
			conn := c.Hijack()
			defer conn.Close(context.Background())
			if _, err := conn.Exec(ctx, "LISTEN drover_health"); err != nil {
				return err
			}
			for {
				n, err := conn.WaitForNotification(ctx)
				if err != nil {
					return err
				}
				s.log.Debug().Str("payload", n.Payload).Msg("health event")
				if s.cfg.Control != nil {
					s.cfg.Control.Poke()
				}
				select {
				case events <- struct{}{}:
				default:
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		s.log.Warn().Err(err).Msg("LISTEN drover_health: retrying in 1s")
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// refresh reads the fleet view from the database.
func (s *Server) refresh(ctx context.Context) ([]scheduler.Host, error) {
	o := s.cfg.Fleet
	o.Now = time.Now()
	s.mu.Lock()
	o.Unreachable = s.unreachable
	s.mu.Unlock()
	hosts, err := fleet.Snapshot(ctx, s.store, o)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readErr = err
	if err == nil {
		s.hosts, s.readAt = hosts, o.Now
	}
	return hosts, err
}

// view returns the fleet view, read again when older than MaxViewAge.
func (s *Server) view(ctx context.Context) ([]scheduler.Host, time.Time, error) {
	s.mu.Lock()
	hosts, at := s.hosts, s.readAt
	s.mu.Unlock()
	if time.Since(at) <= s.cfg.MaxViewAge && hosts != nil {
		return hosts, at, nil
	}
	hosts, err := s.refresh(ctx)
	return hosts, time.Now(), err
}

// authorized checks the bearer token in constant time.
func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}
