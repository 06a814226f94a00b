package hostlist

import (
	"reflect"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"vn1", []string{"vn1"}},
		{"vn[1-3]", []string{"vn1", "vn2", "vn3"}},
		{"vn[1-2,5]", []string{"vn1", "vn2", "vn5"}},
		{"n[01-03]", []string{"n01", "n02", "n03"}},                // padding kept
		{"n[08-10]", []string{"n08", "n09", "n10"}},                // padding across a digit boundary
		{"vn[1-2],hv1", []string{"vn1", "vn2", "hv1"}},             // top-level commas
		{"r[1-2]n[1-2]", []string{"r1n1", "r1n2", "r2n1", "r2n2"}}, // two dimensions
		{"n[1-2]-ib", []string{"n1-ib", "n2-ib"}},                  // suffix
		{" vn1 , vn1,vn2 ", []string{"vn1", "vn2"}},                // spaces, duplicates
	} {
		got, err := Expand(tc.in)
		if err != nil {
			t.Errorf("Expand(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Expand(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestExpandRejects(t *testing.T) {
	for _, in := range []string{
		"", "vn[", "vn[]", "vn[3-1]", "vn[a-b]", "vn[1-2", "vn1,,vn2", "vn;rm -rf /", "vn[1-999999]",
		"n$(id)", "vn[1-2]]", "'; DROP TABLE vnodes;--",
	} {
		if got, err := Expand(in); err == nil {
			t.Errorf("Expand(%q) = %v, want an error", in, got)
		} else if in != "" && !strings.Contains(err.Error(), "hostlist") {
			t.Errorf("Expand(%q): error %q does not say it is about the hostlist", in, err)
		}
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"vn[1-3]", "a,b", "r[1-2]n[01-3]x", "[", "]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := Expand(s)
		if err != nil {
			return
		}
		if len(names) == 0 || len(names) > MaxNodes {
			t.Fatalf("Expand(%q) gave %d names", s, len(names))
		}
		for _, n := range names {
			if !validName(n) {
				t.Fatalf("Expand(%q) produced invalid name %q", s, n)
			}
		}
	})
}
