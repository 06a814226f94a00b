package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/db"
	"github.com/drover-hpc/drover/sql/migrations"
)

// DatabaseConfig is the database tests use: TEST_DATABASE_URL when set, else the testbed's.
func DatabaseConfig(t testing.TB) config.Database {
	t.Helper()
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		d := config.Defaults().Database
		d.URL = u
		return d
	}
	return Config(t).Database
}

// Schema creates a schema of its own for this test and returns its name and a pool whose
// search_path is that schema, so everything the test creates stays apart from other tests.
// The schema is dropped when the test ends.
func Schema(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := db.PoolConfig(DatabaseConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "test_" + hex.EncodeToString(b[:])

	admin, err := pgx.ConnectConfig(ctx, pc.ConnConfig.Copy())
	if err != nil {
		if Required() {
			t.Fatalf("database %s: %v", db.Describe(pc), err)
		}
		t.Skipf("no database (%v): run scripts/testbed up pg or set TEST_DATABASE_URL", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	pc.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.ConnectConfig(ctx, pc.ConnConfig.Copy())
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema, pool
}

// MigratedSchema is Schema with drover's migrations applied.
func MigratedSchema(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	schema, pool := Schema(t)
	ms, err := db.LoadMigrations(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.NewMigrator(pool, ms).Up(context.Background()); err != nil {
		t.Fatalf("migrate %s: %v", schema, err)
	}
	return schema, pool
}

// AgentRole creates a login role in drover_agent, dropped when the test ends, and returns its
// name and password; the error says when the test database's role may not create roles.
func AgentRole(t testing.TB, admin *pgxpool.Pool) (role, password string, err error) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	role, password = "drover_agent_t"+hex.EncodeToString(b[:]), hex.EncodeToString(b[:])+"Pw"
	// a role name and password cannot be bind parameters; both are hex made here
	if _, err := admin.Exec(context.Background(), "CREATE ROLE "+role+" LOGIN PASSWORD '"+password+"' IN ROLE drover_agent"); err != nil {
		return "", "", err
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	return role, password, nil
}

// AgentPool connects to schema as a fresh AgentRole (the agents' least privileges). Without
// CREATEROLE the test is skipped, or fails when the testbed is required.
func AgentPool(t testing.TB, admin *pgxpool.Pool, schema string) *pgxpool.Pool {
	t.Helper()
	role, pass, err := AgentRole(t, admin)
	if err != nil {
		if Required() {
			t.Fatalf("create agent role: %v", err)
		}
		t.Skipf("cannot create an agent login role (%v): the test database role needs CREATEROLE", err)
	}
	pc := admin.Config().Copy()
	pc.ConnConfig.User, pc.ConnConfig.Password = role, pass
	pc.ConnConfig.RuntimeParams["search_path"] = schema
	pc.MaxConns = 8
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // registered after the role's drop: runs before it
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	return pool
}
