package health

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseError is a mistake in a thresholds file and where it is. Parse functions return every
// mistake of a file at once, joined (errors.Join); errors.As finds the first.
type ParseError struct {
	File string
	Line int    // 1-based; 0 when the mistake is not tied to a line
	Msg  string // what is wrong
	Err  error  // the underlying error, if any
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Err != nil {
		if e.Msg != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

// Parse reads a thresholds file: YAML (ParseYAML) when its name ends in .yaml or .yml, else the
// line form (ParseLines). file names the file in errors; data is its content.
func Parse(file string, data []byte) (*Table, error) {
	var (
		ths []Threshold
		err error
	)
	switch strings.ToLower(filepath.Ext(file)) {
	case ".yaml", ".yml":
		ths, err = ParseYAML(file, data)
	default:
		ths, err = ParseLines(file, data)
	}
	if err != nil {
		return nil, err
	}
	return NewTable(ths)
}

const lineForms = `want "<sensor> <low> <high>" or "<sensor> <low_crit> <low_warn> <high_warn> <high_crit>"`

// ParseLines parses the line form of thresholds, one sensor per line, as the 2007 proactive
// fault-tolerance daemon read them:
//
//	# sensor             low   high          (critical bounds)
//	CPU Temp             10    85
//	# sensor             low_crit low_warn high_warn high_crit
//	System Temp          5     10    70      80
//	"Fan 1"              300   -             (quoted: the name ends in a number)
//
// The last two or four fields are the bounds; what comes before them is the sensor name, which
// may contain spaces. With two bounds they are critical ones (the limits the 2007 daemon
// migrated at; no warning state); with four, critical and warning. A bound is a number, or `-`
// or `none` for no bound. `#` starts a comment at the start of a line or after white space.
// A name must be quoted ("...") when it ends in a field that reads as a bound or starts like
// one (a digit, sign or point), since `Fan 1 500 -` could also be a four-bound line missing
// a bound and `CPU Temp 5 1O 80 90` one with a typo: such lines are errors, never guessed.
// Each mistake is reported as a ParseError naming file and line.
func ParseLines(file string, data []byte) ([]Threshold, error) {
	var (
		out   []Threshold
		errs  []error
		lines = map[string]int{} // key → line first given on
	)
	for i, text := range strings.Split(string(data), "\n") {
		n := i + 1
		th, blank, err := parseLine(strings.TrimSuffix(text, "\r"))
		if err == nil && !blank {
			th.Source = fmt.Sprintf("%s:%d", file, n)
			err = th.Validate()
			if prev, dup := lines[key(th.Sensor)]; err == nil && dup {
				err = fmt.Errorf("sensor %q is already given on line %d", th.Sensor, prev)
			}
		}
		switch {
		case err != nil:
			errs = append(errs, &ParseError{File: file, Line: n, Err: err})
		case !blank:
			lines[key(th.Sensor)] = n
			out = append(out, th)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// parseLine parses one line of the line form. blank is true for lines with nothing but white
// space and comments.
func parseLine(line string) (th Threshold, blank bool, err error) {
	s := strings.TrimSpace(line)
	quoted := strings.HasPrefix(s, `"`)
	var name string
	if quoted {
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return th, false, errors.New("the quoted sensor name has no closing quote")
		}
		name, s = s[1:1+end], s[2+end:]
		if s != "" && s[0] != ' ' && s[0] != '\t' {
			return th, false, fmt.Errorf("%q right after the quoted sensor name: want white space", s)
		}
		if strings.TrimSpace(name) == "" {
			return th, false, errors.New("the quoted sensor name is empty")
		}
	}
	fields := strings.Fields(stripComment(s))
	if !quoted && len(fields) == 0 {
		return th, true, nil
	}
	// k: how many fields at the end read as bounds
	k := 0
	for k < len(fields) && isBound(fields[len(fields)-1-k]) {
		k++
	}
	switch {
	case quoted && len(fields) != 2 && len(fields) != 4:
		return th, false, fmt.Errorf("%s: after the quoted name %q come %d fields", lineForms, name, len(fields))
	case quoted && k < len(fields):
		return th, false, fmt.Errorf("%s: %q is not a number, \"-\" or \"none\"", lineForms, fields[len(fields)-1-k])
	case quoted:
	case len(fields) < 3:
		return th, false, fmt.Errorf("%s: only %d field(s)", lineForms, len(fields))
	case k < 2:
		return th, false, fmt.Errorf("%s: %q is not a number, \"-\" or \"none\"", lineForms, fields[len(fields)-1-k])
	case k == len(fields):
		return th, false, fmt.Errorf("%s: no sensor name before the bounds", lineForms)
	case k == 3 || k > 4:
		nb := 2 // bounds in the likelier reading: a name ending in one number with two bounds
		if k > 4 {
			nb = 4
		}
		at := len(fields) - nb
		return th, false, fmt.Errorf("%s: %d numbers at the end of the line; if the sensor name ends in a number, quote it: \"%s\" %s",
			lineForms, k, strings.Join(fields[:at], " "), strings.Join(fields[at:], " "))
	case len(fields)-k > 1 && strings.ContainsAny(fields[len(fields)-k-1][:1], "0123456789+-."):
		// "CPU Temp 5 1O 80 90" must not become a sensor "CPU Temp 5 1O" with two bounds
		return th, false, fmt.Errorf("%s: %q looks like a mistyped number; if it is part of the sensor name, quote the name",
			lineForms, fields[len(fields)-k-1])
	default:
		name = strings.Join(fields[:len(fields)-k], " ")
	}
	bs := fields[len(fields)-k:]
	th.Sensor = name
	if k == 2 {
		err = setBounds(bs, &th.Critical.Low, &th.Critical.High)
	} else {
		err = setBounds(bs, &th.Critical.Low, &th.Warning.Low, &th.Warning.High, &th.Critical.High)
	}
	return th, false, err
}

// stripComment cuts s at the first '#' that starts a field.
func stripComment(s string) string {
	for i := range len(s) {
		if s[i] == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			return s[:i]
		}
	}
	return s
}

// isBound reports whether a field reads as a bound: a number (finite or not: infinities are
// rejected later, with a clearer message), "-" or "none".
func isBound(f string) bool {
	if f == "-" || strings.EqualFold(f, "none") {
		return true
	}
	_, err := strconv.ParseFloat(f, 64)
	return err == nil || errors.Is(err, strconv.ErrRange)
}

// setBounds stores each field in the bound of the same position; "-" and "none" leave it nil.
func setBounds(fields []string, dst ...**float64) error {
	for i, f := range fields {
		if f == "-" || strings.EqualFold(f, "none") {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || !finite(v) {
			return fmt.Errorf("bound %q is not a finite number", f)
		}
		*dst[i] = &v
	}
	return nil
}

// ParseYAML parses the YAML form of thresholds, a list of sensors:
//
//	# thresholds.yaml
//	- sensor: CPU Temp
//	  warning:  {high: 80}
//	  critical: {low: 5, high: 90}
//	  hysteresis: 2        # optional; see Threshold.Margin for the default
//	- sensor: Fan 1
//	  critical: {low: 300}
//
// A bound that is left out, null (~) or none does not exist. Unknown keys, a key given twice,
// a missing sensor name and values of the wrong kind are errors naming file, line and key.
func ParseYAML(file string, data []byte) ([]Threshold, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &ParseError{File: file, Msg: "not valid YAML", Err: err}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // an empty file
	}
	root := deref(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.SequenceNode {
		return nil, &ParseError{File: file, Line: root.Line, Msg: "want a list of sensors (- sensor: ...)"}
	}
	p := yamlParser{file: file, lines: map[string]int{}}
	var out []Threshold
	for _, item := range root.Content {
		if th, ok := p.threshold(deref(item)); ok {
			out = append(out, th)
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return out, nil
}

// yamlParser collects the mistakes of one YAML file.
type yamlParser struct {
	file  string
	errs  []error
	lines map[string]int // sensor key → line first given on
}

func (p *yamlParser) fail(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &ParseError{File: p.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

// threshold parses one list item; ok is false when it had mistakes (already recorded).
func (p *yamlParser) threshold(n *yaml.Node) (th Threshold, ok bool) {
	if n.Kind != yaml.MappingNode {
		p.fail(n, "want a mapping with sensor, warning, critical, hysteresis")
		return th, false
	}
	before := len(p.errs)
	var sensorSeen bool
	p.mapping(n, func(k string, key, v *yaml.Node) {
		switch k {
		case "sensor":
			sensorSeen = true
			if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" || strings.TrimSpace(v.Value) == "" {
				p.fail(v, "sensor: want a sensor name")
				return
			}
			th.Sensor = v.Value
		case "warning":
			th.Warning = p.limits(k, v)
		case "critical":
			th.Critical = p.limits(k, v)
		case "hysteresis":
			th.Hysteresis = p.number(k, v, false)
		default:
			p.fail(key, "unknown key %q (want sensor, warning, critical, hysteresis)", k)
		}
	})
	if !sensorSeen {
		p.fail(n, "no sensor key")
	}
	if len(p.errs) > before {
		return th, false
	}
	th.Source = fmt.Sprintf("%s:%d", p.file, n.Line)
	if err := th.Validate(); err != nil {
		p.errs = append(p.errs, &ParseError{File: p.file, Line: n.Line, Err: err})
		return th, false
	}
	if prev, dup := p.lines[key(th.Sensor)]; dup {
		p.fail(n, "sensor %q is already given on line %d", th.Sensor, prev)
		return th, false
	}
	p.lines[key(th.Sensor)] = n.Line
	return th, true
}

// limits parses {low: ..., high: ...}; null means no bounds.
func (p *yamlParser) limits(name string, n *yaml.Node) Limits {
	var l Limits
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return l
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, "%s: want {low: ..., high: ...}", name)
		return l
	}
	p.mapping(n, func(k string, key, v *yaml.Node) {
		switch k {
		case "low":
			l.Low = p.number(name+".low", v, true)
		case "high":
			l.High = p.number(name+".high", v, true)
		default:
			p.fail(key, "unknown key %q in %s (want low, high)", k, name)
		}
	})
	return l
}

// mapping calls f for each key of a mapping node, in order, after checking that keys are
// strings given once.
func (p *yamlParser) mapping(n *yaml.Node, f func(k string, key, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, v := deref(n.Content[i]), deref(n.Content[i+1])
		if key.Kind != yaml.ScalarNode {
			p.fail(key, "want a plain key")
			continue
		}
		if seen[key.Value] {
			p.fail(key, "key %q is given twice", key.Value)
			continue
		}
		seen[key.Value] = true
		f(key.Value, key, v)
	}
}

// number parses a bound or hysteresis: a finite number. For a bound (orNone), null, "-" and
// "none" give nil.
func (p *yamlParser) number(name string, n *yaml.Node, orNone bool) *float64 {
	if n.Kind != yaml.ScalarNode {
		p.fail(n, "%s: want a number", name)
		return nil
	}
	switch tag := n.ShortTag(); {
	case orNone && (tag == "!!null" || n.Value == "-" || strings.EqualFold(n.Value, "none")):
		return nil
	case tag == "!!int" || tag == "!!float":
		var v float64
		if err := n.Decode(&v); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			p.fail(n, "%s: %q is not a finite number", name, n.Value)
			return nil
		}
		return &v
	}
	p.fail(n, "%s: %q is not a number", name, n.Value)
	return nil
}

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}
