package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drover-hpc/drover/internal/config"
)

// Connect opens a pool to the configured database and checks that it answers. The password may come
// from the URL, cfg.PasswordFile or the PGPASSWORD environment variable; it never appears in errors.
func Connect(ctx context.Context, cfg config.Database) (*pgxpool.Pool, error) {
	pc, err := PoolConfig(cfg)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", Describe(pc), err)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database %s: %w (is PostgreSQL running? check database.url and database.password_file)", Describe(pc), err)
	}
	return pool, nil
}

// PoolConfig turns drover's database settings into a pgx pool configuration.
func PoolConfig(cfg config.Database) (*pgxpool.Config, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("database.url is empty: set it in the config file or DROVER_DATABASE_URL")
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgx's parse errors can quote the whole URL, password included: say only what is wrong.
		return nil, fmt.Errorf("database.url is not a valid PostgreSQL URL or DSN (expected postgres://user@host:port/db)")
	}
	pass, err := config.Secret("", cfg.PasswordFile, "database.password_file")
	if err != nil {
		return nil, err
	}
	if pass != "" {
		pc.ConnConfig.Password = pass
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = int32(cfg.MaxConns)
	}
	if cfg.ConnectTimeout > 0 {
		pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	}
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = "drover"
	}
	return pc, nil
}

// Describe names a database without its password: user@host:port/database.
func Describe(pc *pgxpool.Config) string {
	c := pc.ConnConfig
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}
