// Package hostlist expands Slurm hostlist expressions such as "vn[1-3,5],n[01-02]-ib" into node names.
package hostlist

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxNodes bounds one expansion, so a hostile or mistyped range (vn[1-999999999]) fails fast.
const MaxNodes = 1 << 16

// Expand returns the node names of expr in order, without duplicates.
func Expand(expr string) ([]string, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, fmt.Errorf("hostlist: empty expression")
	}
	var out []string
	seen := map[string]bool{}
	for _, part := range splitTop(expr) {
		if part == "" {
			return nil, fmt.Errorf("hostlist %q: empty name between commas", expr)
		}
		names, err := expandOne(part)
		if err != nil {
			return nil, fmt.Errorf("hostlist %q: %w", expr, err)
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
			if len(out) > MaxNodes {
				return nil, fmt.Errorf("hostlist %q: more than %d nodes", expr, MaxNodes)
			}
		}
	}
	return out, nil
}

// splitTop splits at commas that are not inside brackets.
func splitTop(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(parts, strings.TrimSpace(s[start:]))
}

// expandOne expands one name that may hold several bracketed ranges ("r[1-2]n[1-3]").
func expandOne(s string) ([]string, error) {
	open := strings.IndexByte(s, '[')
	if open < 0 {
		if strings.ContainsAny(s, "]") || !validName(s) {
			return nil, fmt.Errorf("%q is not a valid node name", s)
		}
		return []string{s}, nil
	}
	close := strings.IndexByte(s[open:], ']')
	if close < 0 {
		return nil, fmt.Errorf("%q: '[' without ']'", s)
	}
	close += open
	prefix, body, rest := s[:open], s[open+1:close], s[close+1:]
	if prefix != "" && !validName(prefix) {
		return nil, fmt.Errorf("%q is not a valid node name prefix", prefix)
	}
	nums, err := expandRanges(body)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	tails, err := expandOne(rest)
	if rest == "" {
		tails, err = []string{""}, nil
	}
	if err != nil {
		return nil, err
	}
	if len(nums)*len(tails) > MaxNodes {
		return nil, fmt.Errorf("%q: more than %d nodes", s, MaxNodes)
	}
	out := make([]string, 0, len(nums)*len(tails))
	for _, n := range nums {
		for _, t := range tails {
			out = append(out, prefix+n+t)
		}
	}
	return out, nil
}

// expandRanges expands "1-3,05,7-8" keeping zero padding ("01-03" → 01 02 03).
func expandRanges(body string) ([]string, error) {
	if body == "" {
		return nil, fmt.Errorf("empty brackets")
	}
	var out []string
	for _, r := range strings.Split(body, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 || lo == "" {
			return nil, fmt.Errorf("%q is not a number or range", r)
		}
		if !isRange {
			out = append(out, lo)
			continue
		}
		b, err := strconv.Atoi(hi)
		if err != nil || b < a {
			return nil, fmt.Errorf("%q is not an ascending range", r)
		}
		if b-a >= MaxNodes {
			return nil, fmt.Errorf("range %q has more than %d nodes", r, MaxNodes)
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		for i := a; i <= b; i++ {
			out = append(out, fmt.Sprintf("%0*d", width, i))
		}
	}
	return out, nil
}

// validName accepts what Slurm node names are made of: letters, digits, '-', '_' and '.'.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}
