package scheduler

import (
	"fmt"
	"strings"
)

// Hint words a user puts in the job's --comment (or --extra), e.g.
// `sbatch -p migratable --comment drover:spread job.sh`. Words without the drover: prefix are
// the user's own and are left alone.
const (
	HintSpread    = "drover:spread"     // never two of the job's vnodes on one hypervisor
	HintPack      = "drover:pack"       // keep the job's vnodes together where they fit
	HintNoMigrate = "drover:no-migrate" // never live-migrate the job's vnodes
)

// ParseHints reads drover hints from a job's comment and extra fields (or the words the jobs
// table keeps, which HintWords wrote). Words are separated by
// white space, commas or semicolons. An unknown drover: word is an error naming it, so a typo
// does not silently give another placement than the user asked for. Contradictions (spread and
// pack) are left to the scheduler, which refuses them with a reason.
func ParseHints(fields ...string) (Hints, error) {
	var h Hints
	for _, f := range fields {
		words := strings.FieldsFunc(f, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' })
		for _, w := range words {
			lw := strings.ToLower(w)
			if !strings.HasPrefix(lw, "drover:") {
				continue
			}
			switch lw {
			case HintSpread:
				h.Spread = true
			case HintPack:
				h.Pack = true
			case HintNoMigrate:
				h.NoMigrate = true
			default:
				return h, fmt.Errorf("unknown drover hint %q in the job (known: %s, %s, %s)", w, HintSpread, HintPack, HintNoMigrate)
			}
		}
	}
	return h, nil
}

// HintWords lists h as the words a user writes (drover:spread…), in a fixed order; ParseHints
// reads them back.
func HintWords(h Hints) []string {
	var out []string
	for _, w := range []struct {
		on   bool
		word string
	}{{h.Spread, HintSpread}, {h.Pack, HintPack}, {h.NoMigrate, HintNoMigrate}} {
		if w.on {
			out = append(out, w.word)
		}
	}
	return out
}
