package queries

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestParse(t *testing.T) {
	qs, err := Parse("x.sql", `-- file comment
-- name: First
SELECT 1;

-- name: Second
-- what it does
SELECT $1::int
  + 2;
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || qs["First"] != "SELECT 1" {
		t.Fatalf("got %q", qs)
	}
	if want := "-- what it does\nSELECT $1::int\n  + 2"; qs["Second"] != want {
		t.Fatalf("Second = %q, want %q", qs["Second"], want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"-- name: A\nSELECT 1;\n-- name: A\nSELECT 2;\n", "defined twice"},
		{"-- name: Empty\n\n-- name: B\nSELECT 1;\n", "Empty is empty"},
	} {
		if _, err := Parse("f.sql", tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.text, err, tc.want)
		}
	}
	_, err := load(fstest.MapFS{
		"a.sql": {Data: []byte("-- name: Q\nSELECT 1;\n")},
		"b.sql": {Data: []byte("-- name: Q\nSELECT 2;\n")},
	})
	if err == nil || !strings.Contains(err.Error(), "also defined") {
		t.Errorf("duplicate across files: err = %v", err)
	}
}

// Every embedded file parses, and every query is non-trivial SQL.
func TestEmbedded(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(s) == 0 {
		t.Fatal("no embedded queries")
	}
	for n, q := range s {
		u := strings.ToUpper(q)
		if !strings.Contains(u, "SELECT") && !strings.Contains(u, "INSERT") && !strings.Contains(u, "UPDATE") && !strings.Contains(u, "DELETE") {
			t.Errorf("query %s does not look like SQL: %q", n, q)
		}
	}
}
