package slurm

import (
	"fmt"
	"strconv"
	"strings"
)

// maxHostlist bounds an expansion, so a typo such as n[1-99999999] cannot eat the memory.
const maxHostlist = 1 << 16

// ExpandHostlist expands a Slurm hostlist expression into single names, in order:
// "n[1-3],vn[01-02]" → n1 n2 n3 vn01 vn02. A range keeps the zero padding of its first number;
// several bracket groups in one name multiply ("r[1-2]n[1-2]" → r1n1 r1n2 r2n1 r2n2).
// Empty input gives no names.
func ExpandHostlist(expr string) ([]string, error) {
	var out []string
	for _, item := range splitTop(expr) {
		if item == "" {
			continue
		}
		names, err := expandOne(item, maxHostlist-len(out))
		if err != nil {
			return nil, fmt.Errorf("hostlist %q: %w", expr, err)
		}
		out = append(out, names...)
	}
	return out, nil
}

// splitTop splits at commas outside brackets.
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

// expandOne expands one name with zero or more bracket groups, at most limit names.
func expandOne(item string, limit int) ([]string, error) {
	open := strings.IndexByte(item, '[')
	if open < 0 {
		if strings.ContainsRune(item, ']') {
			return nil, fmt.Errorf("%q: ']' without '['", item)
		}
		return []string{item}, nil
	}
	end := strings.IndexByte(item[open:], ']')
	if end < 0 {
		return nil, fmt.Errorf("%q: '[' without ']'", item)
	}
	end += open
	prefix, body, rest := item[:open], item[open+1:end], item[end+1:]
	if strings.ContainsRune(body, '[') {
		return nil, fmt.Errorf("%q: nested '['", item)
	}
	suffixes, err := expandOne(rest, limit)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range strings.Split(body, ",") {
		lo, hi, width, err := parseRange(r)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		if (hi-lo+1)*len(suffixes) > limit-len(out) {
			return nil, fmt.Errorf("%q: more than %d names", item, maxHostlist)
		}
		for n := lo; n <= hi; n++ {
			num := fmt.Sprintf("%0*d", width, n)
			for _, s := range suffixes {
				out = append(out, prefix+num+s)
			}
		}
	}
	return out, nil
}

// parseRange reads "7", "01-10"; width is the zero-padded width of the first number (0: none).
func parseRange(r string) (lo, hi, width int, err error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(r), "-")
	if lo, err = strconv.Atoi(a); err != nil || lo < 0 {
		return 0, 0, 0, fmt.Errorf("%q is not a number or range", r)
	}
	if len(a) > 1 && a[0] == '0' {
		width = len(a)
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil || hi < lo {
			return 0, 0, 0, fmt.Errorf("%q is not a range", r)
		}
	}
	return lo, hi, width, nil
}
