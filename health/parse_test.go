package health

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLines(t *testing.T) {
	const file = "thresholds.conf"
	src := func(th Threshold, line string) Threshold {
		th.Source = file + ":" + line
		return th
	}
	tests := []struct {
		name string
		text string
		want []Threshold
	}{
		{name: "empty", text: ""},
		{name: "only comments and blanks", text: "# thresholds\n\n   \t\n  # more\n"},
		{
			// two numbers are critical bounds, as in the 2007 daemon's file
			name: "classic line, name with a space",
			text: "CPU Temp 10 85\n",
			want: []Threshold{src(th("CPU Temp", 10, none, none, 85), "1")},
		},
		{
			name: "four numbers: critical and warning",
			text: "System Temp  5 10 70 80   # board\n",
			want: []Threshold{src(th("System Temp", 5, 10, 70, 80), "1")},
		},
		{
			name: "no bound as - and none, in any case",
			text: "Fan1 300 -\nVcore NONE 1.5\nP1 DIMM - none - 85\n",
			want: []Threshold{
				src(th("Fan1", 300, none, none, none), "1"),
				src(th("Vcore", none, none, none, 1.5), "2"),
				src(th("P1 DIMM", none, none, none, 85), "3"),
			},
		},
		{
			name: "quoted names may end in numbers and hold #",
			text: "\"Fan 1\" 300 -\n  \"Temp #2\"\t5 10 70 80 # comment\n",
			want: []Threshold{
				src(th("Fan 1", 300, none, none, none), "1"),
				src(th("Temp #2", 5, 10, 70, 80), "2"),
			},
		},
		{
			// '#' inside a field is part of it; only a '#' starting a field starts a comment
			name: "hash inside a name, CRLF line ends, negative and exponent numbers",
			text: "CPU#1 Temp -10 8.5e1\r\n12V 10.8 11.4 12.6 13.2\r\nCPU 1 Temp 10 85\r\n\"P1 3.3V\" 3.0 3.6\r\n",
			want: []Threshold{
				src(th("CPU#1 Temp", -10, none, none, 85), "1"),
				// a one-field name may start with a digit
				src(th("12V", 10.8, 11.4, 12.6, 13.2), "2"),
				// numbers inside a name are fine; at its end they need quotes
				src(th("CPU 1 Temp", 10, none, none, 85), "3"),
				src(th("P1 3.3V", 3.0, none, none, 3.6), "4"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLines(file, []byte(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseLines() = %d thresholds, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if diff := diffThreshold(got[i], tt.want[i]); diff != "" {
					t.Errorf("threshold %d: %s", i, diff)
				}
			}
		})
	}
}

func TestParseLinesErrors(t *testing.T) {
	const file = "/etc/drover/thresholds.conf"
	tests := []struct {
		name string
		text string
		want []string // each a line of the error, in order
	}{
		{
			name: "typo in a number",
			text: "# ok\nCPU Temp 10 8S\n",
			want: []string{file + `:2: want "<sensor> <low> <high>" or "<sensor> <low_crit> <low_warn> <high_warn> <high_crit>": "8S" is not a number, "-" or "none"`},
		},
		{
			// a mistyped four-number line must not become a sensor named "CPU Temp 5 1O"
			name: "typo in a four-number line",
			text: "CPU Temp 5 1O 80 90\n",
			want: []string{file + `:1: want "<sensor> <low> <high>" or "<sensor> <low_crit> <low_warn> <high_warn> <high_crit>": "1O" looks like a mistyped number; if it is part of the sensor name, quote the name`},
		},
		{
			// three numbers: a name ending in a number, or a four-number line missing one?
			name: "three numbers are ambiguous",
			text: "Fan 1 500 -\n",
			want: []string{file + `:1: want "<sensor> <low> <high>" or "<sensor> <low_crit> <low_warn> <high_warn> <high_crit>": 3 numbers at the end of the line; if the sensor name ends in a number, quote it: "Fan 1" 500 -`},
		},
		{
			name: "five numbers are ambiguous",
			text: "DIMM 1 5 10 80 90\n",
			want: []string{file + `:1: want "<sensor> <low> <high>" or "<sensor> <low_crit> <low_warn> <high_warn> <high_crit>": 5 numbers at the end of the line; if the sensor name ends in a number, quote it: "DIMM 1" 5 10 80 90`},
		},
		{
			name: "name ending in a number-like field",
			text: "P1 3.3V 3.0 3.6\n",
			want: []string{file + `:1: want "<sensor> <low> <high>" or "<sensor> <low_crit> <low_warn> <high_warn> <high_crit>": "3.3V" looks like a mistyped number; if it is part of the sensor name, quote the name`},
		},
		{
			name: "too few fields",
			text: "CPU 85\n",
			want: []string{file + `:1: want "<sensor> <low> <high>" or "<sensor> <low_crit> <low_warn> <high_warn> <high_crit>": only 2 field(s)`},
		},
		{
			name: "no name",
			text: "10 20 30 40\n",
			want: []string{file + `:1: want "<sensor> <low> <high>" or "<sensor> <low_crit> <low_warn> <high_warn> <high_crit>": no sensor name before the bounds`},
		},
		{
			name: "infinite bound",
			text: "CPU Temp 10 inf\n",
			want: []string{file + `:1: bound "inf" is not a finite number`},
		},
		{
			name: "out of order",
			text: "CPU Temp 90 10\n",
			want: []string{file + `:1: sensor "CPU Temp": critical low 90 is not below critical high 10 (want critical low <= warning low < warning high <= critical high)`},
		},
		{
			name: "warning outside critical",
			text: "CPU Temp 5 10 95 90\n",
			want: []string{file + `:1: sensor "CPU Temp": warning high 95 is not below critical high 90 (want critical low <= warning low < warning high <= critical high)`},
		},
		{
			name: "duplicate, matched ignoring case",
			text: "CPU Temp 10 85\n\ncpu temp 10 90\n",
			want: []string{file + `:3: sensor "cpu temp" is already given on line 1`},
		},
		{
			name: "unterminated quote",
			text: "\"Fan 1 300 -\n",
			want: []string{file + `:1: the quoted sensor name has no closing quote`},
		},
		{
			name: "quoted name with three numbers",
			text: "\"Fan 1\" 300 - 5\n",
			want: []string{file + `:1: want "<sensor> <low> <high>" or "<sensor> <low_crit> <low_warn> <high_warn> <high_crit>": after the quoted name "Fan 1" come 3 fields`},
		},
		{
			name: "quoted name with a typo in a bound",
			text: "\"Fan 1\" 3OO -\n",
			want: []string{file + `:1: want "<sensor> <low> <high>" or "<sensor> <low_crit> <low_warn> <high_warn> <high_crit>": "3OO" is not a number, "-" or "none"`},
		},
		{
			name: "text glued to the closing quote",
			text: "\"Fan\"1 300 -\n",
			want: []string{file + `:1: "1 300 -" right after the quoted sensor name: want white space`},
		},
		{
			// every mistake of the file is reported, in line order
			name: "several mistakes",
			text: "A 1 x\nB 1 2\nC 2 1\n",
			want: []string{
				file + `:1: want "<sensor> <low> <high>" or "<sensor> <low_crit> <low_warn> <high_warn> <high_crit>": "x" is not a number, "-" or "none"`,
				file + `:3: sensor "C": critical low 2 is not below critical high 1 (want critical low <= warning low < warning high <= critical high)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLines(file, []byte(tt.text))
			if err == nil {
				t.Fatalf("ParseLines() = %+v, want an error", got)
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("ParseLines() error =\n%s\nwant\n%s", err, strings.Join(tt.want, "\n"))
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != file || pe.Line == 0 {
				t.Errorf("errors.As(ParseError) = %+v, want one with file and line", pe)
			}
		})
	}
}

func TestParseYAML(t *testing.T) {
	const file = "thresholds.yaml"
	text := `# drover thresholds
- sensor: CPU Temp
  warning:  {high: 80}
  critical: {low: 5, high: 90}
  hysteresis: 2
- sensor: Fan 1          # names may end in numbers here
  critical:
    low: 300
    high: ~
- sensor: 12V
  warning: {low: 11.4, high: 12.6}
  critical: {low: 10.8, high: 13.2}
- sensor: Odd
  critical: {low: none, high: "-"}
- sensor: Silenced       # no bounds: never leaves ok, overrides the BMC
`
	got, err := ParseYAML(file, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []Threshold{
		withHysteresis(th("CPU Temp", 5, none, 80, 90), 2),
		th("Fan 1", 300, none, none, none),
		th("12V", 10.8, 11.4, 12.6, 13.2),
		th("Odd", none, none, none, none),
		th("Silenced", none, none, none, none),
	}
	for i, line := range []string{"2", "6", "10", "13", "15"} {
		want[i].Source = file + ":" + line
	}
	if len(got) != len(want) {
		t.Fatalf("ParseYAML() = %d thresholds, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		if diff := diffThreshold(got[i], want[i]); diff != "" {
			t.Errorf("threshold %d: %s", i, diff)
		}
	}

	for _, empty := range []string{"", "# nothing\n", "~\n", "[]\n"} {
		if got, err := ParseYAML(file, []byte(empty)); err != nil || len(got) != 0 {
			t.Errorf("ParseYAML(%q) = %v, %v; want nothing", empty, got, err)
		}
	}
}

func TestParseYAMLErrors(t *testing.T) {
	const file = "t.yaml"
	tests := []struct {
		name string
		text string
		want []string
	}{
		{
			name: "unknown key",
			text: "- sensor: CPU Temp\n  critical: {high: 90}\n  hysterisis: 2\n",
			want: []string{`t.yaml:3: unknown key "hysterisis" (want sensor, warning, critical, hysteresis)`},
		},
		{
			name: "unknown key in a band",
			text: "- sensor: CPU Temp\n  critical:\n    hi: 90\n",
			want: []string{`t.yaml:3: unknown key "hi" in critical (want low, high)`},
		},
		{
			name: "not a number",
			text: "- sensor: CPU Temp\n  warning: {high: 8O}\n",
			want: []string{`t.yaml:2: warning.high: "8O" is not a number`},
		},
		{
			name: "infinite",
			text: "- sensor: CPU Temp\n  warning: {high: .inf}\n",
			want: []string{`t.yaml:2: warning.high: ".inf" is not a finite number`},
		},
		{
			name: "hysteresis must be a number",
			text: "- sensor: CPU Temp\n  critical: {high: 90}\n  hysteresis: none\n",
			want: []string{`t.yaml:3: hysteresis: "none" is not a number`},
		},
		{
			name: "no sensor",
			text: "- critical: {high: 90}\n",
			want: []string{`t.yaml:1: no sensor key`},
		},
		{
			name: "empty sensor",
			text: "- sensor: \"\"\n",
			want: []string{`t.yaml:1: sensor: want a sensor name`},
		},
		{
			name: "key twice",
			text: "- sensor: A\n  critical: {high: 90}\n  critical: {high: 80}\n",
			want: []string{`t.yaml:3: key "critical" is given twice`},
		},
		{
			name: "ordering",
			text: "- sensor: A\n  warning: {high: 95}\n  critical: {high: 90}\n",
			want: []string{`t.yaml:1: sensor "A": warning high 95 is not below critical high 90 (want critical low <= warning low < warning high <= critical high)`},
		},
		{
			name: "duplicate sensor",
			text: "- sensor: A\n- sensor: B\n- sensor: a\n",
			want: []string{`t.yaml:3: sensor "a" is already given on line 1`},
		},
		{
			name: "not a list",
			text: "sensor: A\n",
			want: []string{`t.yaml:1: want a list of sensors (- sensor: ...)`},
		},
		{
			name: "band not a mapping",
			text: "- sensor: A\n  critical: 90\n",
			want: []string{`t.yaml:2: critical: want {low: ..., high: ...}`},
		},
		{
			name: "several mistakes",
			text: "- sensor: A\n  colour: red\n- sensor: B\n  warning: {low: x}\n",
			want: []string{
				`t.yaml:2: unknown key "colour" (want sensor, warning, critical, hysteresis)`,
				`t.yaml:4: warning.low: "x" is not a number`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseYAML(file, []byte(tt.text))
			if err == nil {
				t.Fatalf("ParseYAML() = %+v, want an error", got)
			}
			if err.Error() != strings.Join(tt.want, "\n") {
				t.Errorf("ParseYAML() error =\n%s\nwant\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}

	// broken YAML: the library's message carries the line
	_, err := ParseYAML(file, []byte("- sensor: A\n  critical: {high: 90\n"))
	var pe *ParseError
	if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "t.yaml: not valid YAML: yaml: line") {
		t.Errorf("ParseYAML(broken) error = %v, want a ParseError with the YAML line", err)
	}
}

func TestParse(t *testing.T) {
	// the form follows the file name
	tab, err := Parse("a.yml", []byte("- sensor: CPU Temp\n  critical: {high: 90}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := tab.Lookup("cpu temp"); !ok || *got.Critical.High != 90 || got.Source != "a.yml:1" {
		t.Errorf("Parse(yaml) lookup = %+v, %v", got, ok)
	}
	tab, err = Parse("a.conf", []byte("CPU Temp 10 85\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := tab.Lookup("CPU Temp"); !ok || *got.Critical.High != 85 {
		t.Errorf("Parse(lines) lookup = %+v, %v", got, ok)
	}
	if _, err := Parse("a.conf", []byte("- sensor: CPU Temp\n")); err == nil {
		t.Error("Parse(YAML in a .conf file) = nil error, want the line form's complaint")
	}
}
