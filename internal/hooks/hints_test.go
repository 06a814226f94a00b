package hooks

import (
	"strings"
	"testing"

	"github.com/drover-hpc/drover/scheduler"
)

func TestParseHints(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want scheduler.Hints
		err  string
	}{
		{[]string{""}, scheduler.Hints{}, ""},
		{[]string{"my own comment"}, scheduler.Hints{}, ""},
		{[]string{"drover:spread"}, scheduler.Hints{Spread: true}, ""},
		{[]string{"run 7, drover:pack;drover:no-migrate"}, scheduler.Hints{Pack: true, NoMigrate: true}, ""},
		{[]string{"DROVER:Spread", "drover:no-migrate"}, scheduler.Hints{Spread: true, NoMigrate: true}, ""},
		{[]string{"drover:spread drover:pack"}, scheduler.Hints{Spread: true, Pack: true}, ""}, // the scheduler refuses it
		{[]string{"drover:sprad"}, scheduler.Hints{}, `unknown drover hint "drover:sprad"`},
		{[]string{"x", "drover:'; DROP TABLE jobs;--"}, scheduler.Hints{}, "unknown drover hint"},
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
