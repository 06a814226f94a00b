// Package queries embeds drover's named SQL queries: every *.sql file here holds blocks that start
// with a "-- name: Name" line. drover runs them by name; operators run the dashboard ones by hand
// in psql or Grafana. Keeping SQL here, not in Go strings, keeps it reviewable in one place.
package queries

import (
	"bufio"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

//go:embed *.sql
var files embed.FS

var nameLine = regexp.MustCompile(`^--\s*name:\s*([A-Za-z][A-Za-z0-9_]*)\s*$`)

// Parse splits SQL text into named queries. Text before the first name line is a file comment.
func Parse(file, text string) (map[string]string, error) {
	out := map[string]string{}
	var name string
	var body strings.Builder
	flush := func() error {
		if name == "" {
			return nil
		}
		q := strings.TrimSpace(body.String())
		if q == "" {
			return fmt.Errorf("%s: query %s is empty", file, name)
		}
		if _, dup := out[name]; dup {
			return fmt.Errorf("%s: query %s is defined twice", file, name)
		}
		out[name] = strings.TrimSuffix(q, ";")
		return nil
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := nameLine.FindStringSubmatch(line); m != nil {
			if err := flush(); err != nil {
				return nil, err
			}
			name = m[1]
			body.Reset()
			continue
		}
		if name != "" {
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, sc.Err()
}

// Set is every named query of every file.
type Set map[string]string

// Load parses all embedded files; names must be unique across files.
func Load() (Set, error) { return load(files) }

func load(fsys fs.FS) (Set, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	all := Set{}
	for _, f := range names {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		qs, err := Parse(f, string(b))
		if err != nil {
			return nil, err
		}
		for n, q := range qs {
			if _, dup := all[n]; dup {
				return nil, fmt.Errorf("%s: query %s is also defined in another file", f, n)
			}
			all[n] = q
		}
	}
	return all, nil
}

// MustLoad is Load for package initialisation: the embedded files are part of the binary, so an
// error is a build defect caught by the tests.
func MustLoad() Set {
	s, err := Load()
	if err != nil {
		panic(err)
	}
	return s
}

// Get returns the named query; an unknown name is a programming error.
func (s Set) Get(name string) string {
	q, ok := s[name]
	if !ok {
		panic("queries: no query named " + name)
	}
	return q
}
