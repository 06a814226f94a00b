package scheduler

import (
	"fmt"
	"sort"
	"strings"
)

// maxFeatures is how many distinct feature names one snapshot may hold (the bits of featureSet).
const maxFeatures = 256

// featureSet is a bit per feature name, numbered by the snapshot's feature dictionary.
type featureSet [maxFeatures / 64]uint64

func (s *featureSet) add(bit int) { s[bit/64] |= 1 << (bit % 64) }

// contains reports whether every feature of t is in s.
func (s *featureSet) contains(t *featureSet) bool {
	return s[0]&t[0] == t[0] && s[1]&t[1] == t[1] && s[2]&t[2] == t[2] && s[3]&t[3] == t[3]
}

// constraint is a parsed feature expression in disjunctive normal form: a host matches when its
// features contain every feature of at least one term. No terms = no constraint.
type constraint []featureSet

func (c constraint) match(s *featureSet) bool {
	if len(c) == 0 {
		return true
	}
	for i := range c {
		if s.contains(&c[i]) {
			return true
		}
	}
	return false
}

// parseConstraint parses a Slurm-style expression: terms separated by '|', each a list of feature
// names separated by '&' or ','. dict maps a feature name to its bit; a name not in it is an error
// naming the name and the known features.
func parseConstraint(expr string, dict map[string]int) (constraint, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	if i := strings.IndexAny(expr, "()[]*!"); i >= 0 {
		return nil, fmt.Errorf("constraint %q: %q at offset %d is not supported (only names, &, ',' and |)", expr, expr[i], i)
	}
	var c constraint
	for _, term := range strings.Split(expr, "|") {
		var fs featureSet
		for _, name := range strings.FieldsFunc(term, func(r rune) bool { return r == '&' || r == ',' }) {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			bit, ok := dict[name]
			if !ok {
				return nil, fmt.Errorf("constraint %q: unknown feature %q (no host has it; known: %s)", expr, name, knownFeatures(dict))
			}
			fs.add(bit)
		}
		if fs == (featureSet{}) {
			return nil, fmt.Errorf("constraint %q: empty term %q", expr, term)
		}
		c = append(c, fs)
	}
	return c, nil
}

func knownFeatures(dict map[string]int) string {
	if len(dict) == 0 {
		return "none"
	}
	names := make([]string, 0, len(dict))
	for n := range dict {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 20 {
		names = append(names[:20], fmt.Sprintf("… %d more", len(dict)-20))
	}
	return strings.Join(names, ", ")
}
