package db_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drover-hpc/drover/internal/db"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/sql/migrations"
)

func TestLoadMigrationsRejects(t *testing.T) {
	ok := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"bad name", fstest.MapFS{"1_init.up.sql": ok("x")}, "name must be NNN_name"},
		{"upper case", fstest.MapFS{"001_Init.up.sql": ok("x"), "001_Init.down.sql": ok("x")}, "name must be NNN_name"},
		{"zero", fstest.MapFS{"000_a.up.sql": ok("x"), "000_a.down.sql": ok("x")}, "starts at 001"},
		{"gap", fstest.MapFS{
			"001_a.up.sql": ok("x"), "001_a.down.sql": ok("x"),
			"003_c.up.sql": ok("x"), "003_c.down.sql": ok("x"),
		}, "gap: expected 002, found 003_c"},
		{"missing down", fstest.MapFS{"001_a.up.sql": ok("x")}, "needs both"},
		{"two names", fstest.MapFS{"001_a.up.sql": ok("x"), "001_b.down.sql": ok("x")}, "two names"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.LoadMigrations(tc.fs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadMigrationsOrder(t *testing.T) {
	fs := fstest.MapFS{
		"002_b.up.sql": {Data: []byte("B")}, "002_b.down.sql": {Data: []byte("b")},
		"001_a.up.sql": {Data: []byte("A")}, "001_a.down.sql": {Data: []byte("a")},
		"README.md": {Data: []byte("ignored")}, "embed.go": {Data: []byte("ignored")},
	}
	ms, err := db.LoadMigrations(fs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Name != "a" || ms[1].Up != "B" || ms[1].Down != "b" {
		t.Fatalf("got %+v", ms)
	}
}

func embedded(t *testing.T) []db.Migration {
	t.Helper()
	ms, err := db.LoadMigrations(migrations.FS)
	if err != nil {
		t.Fatalf("embedded migrations: %v", err)
	}
	return ms
}

// tables lists the schema's tables with their column counts: a fingerprint of the schema.
func tables(t *testing.T, pool *pgxpool.Pool, schema string) string {
	t.Helper()
	var s string
	err := pool.QueryRow(context.Background(), `
		SELECT coalesce(string_agg(table_name || ':' || n, ',' ORDER BY table_name), '')
		FROM (SELECT table_name, count(*) AS n FROM information_schema.columns
		      WHERE table_schema = $1 GROUP BY table_name) c`, schema).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMigrateIdempotentAndRoundTrip(t *testing.T) {
	schema, pool := testenv.Schema(t)
	ctx := context.Background()
	all := embedded(t)
	m := db.NewMigrator(pool, all)

	did, err := m.Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(did) != len(all) {
		t.Fatalf("first Up applied %d of %d", len(did), len(all))
	}
	first := tables(t, pool, schema)
	if !strings.Contains(first, "migrations:") || !strings.Contains(first, "hypervisors:") {
		t.Fatalf("schema after Up lacks core tables: %s", first)
	}

	did, err = m.Up(ctx)
	if err != nil || len(did) != 0 {
		t.Fatalf("second Up: applied %d, err %v; want nothing", len(did), err)
	}
	if again := tables(t, pool, schema); again != first {
		t.Fatalf("second Up changed the schema:\n%s\n%s", first, again)
	}

	did, err = m.Down(ctx, len(all))
	if err != nil || len(did) != len(all) {
		t.Fatalf("Down: reverted %d, err %v", len(did), err)
	}
	if left := tables(t, pool, schema); left != "schema_migrations:4" {
		t.Fatalf("after Down all, tables left: %s", left)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("Up after Down: %v", err)
	}
	if back := tables(t, pool, schema); back != first {
		t.Fatalf("down+up did not round-trip:\n%s\n%s", first, back)
	}

	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Applied || s.Modified || s.AppliedAt.IsZero() {
			t.Errorf("status %03d_%s = %+v", s.Version, s.Name, s)
		}
	}
}

func TestMigrateDetectsEditedMigration(t *testing.T) {
	_, pool := testenv.Schema(t)
	ctx := context.Background()
	v1 := []db.Migration{{Version: 1, Name: "a", Up: "CREATE TABLE a (x int)", Down: "DROP TABLE a"}}
	if _, err := db.NewMigrator(pool, v1).Up(ctx); err != nil {
		t.Fatal(err)
	}
	edited := []db.Migration{{Version: 1, Name: "a", Up: "CREATE TABLE a (x int, y int)", Down: "DROP TABLE a"}}
	_, err := db.NewMigrator(pool, edited).Up(ctx)
	if err == nil || !strings.Contains(err.Error(), "changed after it was applied") {
		t.Fatalf("err = %v", err)
	}
	st, _ := db.NewMigrator(pool, edited).Status(ctx)
	if len(st) != 1 || !st[0].Modified {
		t.Fatalf("status = %+v, want Modified", st)
	}
	if _, err := db.NewMigrator(pool, nil).Up(ctx); err == nil || !strings.Contains(err.Error(), "newer than this drover") {
		t.Fatalf("older drover: err = %v", err)
	}
}

// A failing migration leaves nothing behind: all pending migrations apply in one transaction.
func TestMigrateFailureIsAtomic(t *testing.T) {
	schema, pool := testenv.Schema(t)
	ctx := context.Background()
	ms := []db.Migration{
		{Version: 1, Name: "a", Up: "CREATE TABLE a (x int)", Down: "DROP TABLE a"},
		{Version: 2, Name: "b", Up: "CREATE TABLE b (x nosuchtype)", Down: "DROP TABLE b"},
	}
	_, err := db.NewMigrator(pool, ms).Up(ctx)
	if err == nil || !strings.Contains(err.Error(), "apply 002_b") {
		t.Fatalf("err = %v", err)
	}
	if got := tables(t, pool, schema); got != "" {
		t.Fatalf("tables left after failed Up: %s", got)
	}
}

// Two servers migrating at once: the advisory lock lets exactly one apply each migration.
func TestMigrateConcurrent(t *testing.T) {
	_, pool := testenv.Schema(t)
	all := embedded(t)
	var wg sync.WaitGroup
	counts := make([]int, 4)
	errs := make([]error, 4)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			did, err := db.NewMigrator(pool, all).Up(context.Background())
			counts[i], errs[i] = len(did), err
		}()
	}
	wg.Wait()
	total := 0
	for i := range counts {
		if errs[i] != nil {
			t.Errorf("migrator %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	if total != len(all) {
		t.Fatalf("migrations applied %d times in total, want %d", total, len(all))
	}
}

func TestDownNeedsPositiveCount(t *testing.T) {
	_, pool := testenv.Schema(t)
	if _, err := db.NewMigrator(pool, embedded(t)).Down(context.Background(), 0); err == nil {
		t.Fatal("Down(0) succeeded")
	}
}
