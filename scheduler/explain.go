package scheduler

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Table renders the decision as the "why not hv3?" table `drover explain` prints: one row per
// host (the chosen one first, then the other feasible hosts by total, then the dropped ones by
// name) with its verdict, the filter and detail that dropped it, or each scorer's normalised
// score and the weighted total. Header columns name each scorer with its weight.
func (d Decision) Table() string {
	var b strings.Builder
	_ = d.WriteTable(&b)
	return b.String()
}

// WriteTable writes Table to w.
func (d Decision) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "# %s\n", d.Summary())
	hdr := []string{"HOST", "VERDICT", "FILTER"}
	for _, wt := range d.Weights {
		hdr = append(hdr, fmt.Sprintf("%s×%g", strings.ToUpper(wt.Scorer), wt.Weight))
	}
	hdr = append(hdr, "TOTAL", "DETAIL")
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, v := range d.ordered() {
		row := []string{v.Host, d.verdictWord(v), orDash(v.Filter)}
		byName := map[string]Score{}
		for _, s := range v.Scores {
			byName[s.Scorer] = s
		}
		for _, wt := range d.Weights {
			if s, ok := byName[wt.Scorer]; ok && v.Feasible {
				row = append(row, fmt.Sprintf("%.1f", s.Normalized))
			} else {
				row = append(row, "-")
			}
		}
		total := "-"
		if v.Feasible {
			total = fmt.Sprintf("%.2f", v.Score)
		}
		row = append(row, total, v.Detail)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if len(d.Verdicts) < d.Hosts {
		fmt.Fprintf(tw, "# verdicts for %d of %d hosts (explain traces off, or the request was rejected)\n", len(d.Verdicts), d.Hosts)
	}
	return tw.Flush()
}

// Summary is one line: the chosen host (or none), the policy, the seed and the reason.
func (d Decision) Summary() string {
	host := d.Host
	if host == "" {
		host = "nowhere"
	}
	return fmt.Sprintf("%s → %s (policy %s, seed %d): %s", d.VNode, host, d.Policy, d.Seed, d.Reason)
}

// Why answers "why not host?": the host's verdict in one sentence.
func (d Decision) Why(host string) string {
	for _, v := range d.Verdicts {
		if v.Host != host {
			continue
		}
		switch {
		case host == d.Host:
			return fmt.Sprintf("%s was chosen: %s", host, d.Reason)
		case !v.Feasible:
			return fmt.Sprintf("%s was dropped by the %s filter (%s): %s", host, v.Filter, v.Reason, v.Detail)
		default:
			var parts []string
			for _, s := range v.Scores {
				if s.Weight > 0 {
					parts = append(parts, fmt.Sprintf("%s %.1f", s.Scorer, s.Normalized))
				}
			}
			chosen := 0.0
			for _, c := range d.Verdicts {
				if c.Host == d.Host {
					chosen = c.Score
				}
			}
			return fmt.Sprintf("%s was feasible but scored %.2f against %s's %.2f (%s)", host, v.Score, d.Host, chosen, strings.Join(parts, ", "))
		}
	}
	return fmt.Sprintf("%s is not in this decision's verdicts (%d of %d hosts recorded)", host, len(d.Verdicts), d.Hosts)
}

func (d Decision) verdictWord(v Verdict) string {
	switch {
	case v.Host == d.Host && d.Host != "":
		return "chosen"
	case v.Feasible:
		return "feasible"
	default:
		return v.Reason
	}
}

// ordered is the verdicts in table order.
func (d Decision) ordered() []Verdict {
	vs := append([]Verdict(nil), d.Verdicts...)
	rank := func(v Verdict) int {
		switch {
		case v.Host == d.Host && d.Host != "":
			return 0
		case v.Feasible:
			return 1
		}
		return 2
	}
	sort.SliceStable(vs, func(a, b int) bool {
		ra, rb := rank(vs[a]), rank(vs[b])
		if ra != rb {
			return ra < rb
		}
		if ra == 1 && vs[a].Score != vs[b].Score {
			return vs[a].Score > vs[b].Score
		}
		return vs[a].Host < vs[b].Host
	})
	return vs
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
