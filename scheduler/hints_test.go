package scheduler

import (
	"strings"
	"testing"
)

func TestParseHints(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want Hints
		err  string
	}{
		{[]string{""}, Hints{}, ""},
		{[]string{"my own comment"}, Hints{}, ""},
		{[]string{"drover:spread"}, Hints{Spread: true}, ""},
		{[]string{"run 7, drover:pack;drover:no-migrate"}, Hints{Pack: true, NoMigrate: true}, ""},
		{[]string{"DROVER:Spread", "drover:no-migrate"}, Hints{Spread: true, NoMigrate: true}, ""},
		{[]string{"drover:spread drover:pack"}, Hints{Spread: true, Pack: true}, ""}, // the scheduler refuses it
		{[]string{"drover:sprad"}, Hints{}, `unknown drover hint "drover:sprad"`},
		{[]string{"x", "drover:'; DROP TABLE jobs;--"}, Hints{}, "unknown drover hint"},
	} {
		got, err := ParseHints(tc.in...)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// HintWords and ParseHints are inverses: what the job-start hook records, the control loop reads.
func TestHintWordsRoundTrip(t *testing.T) {
	for _, h := range []Hints{{}, {Spread: true}, {Pack: true, NoMigrate: true}, {Spread: true, Pack: true, NoMigrate: true}} {
		got, err := ParseHints(HintWords(h)...)
		if err != nil || got != h {
			t.Errorf("%+v → %q → %+v, %v", h, HintWords(h), got, err)
		}
	}
}
