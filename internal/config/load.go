package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix prefixes every environment variable drover reads for its configuration.
const EnvPrefix = "DROVER"

// Source says where the configuration comes from.
type Source struct {
	// Path of the YAML file. When Explicit is false and the file does not exist, drover runs on
	// defaults, environment and flags alone.
	Path     string
	Explicit bool
	// Flags maps config keys ("log.level") to command-line flags that override them when set.
	Flags map[string]*pflag.Flag
}

// Load reads the config file, then DROVER_* environment variables, then flags (each overriding the
// one before), checks every key and type, and validates the result. Errors name the file, line and key.
func Load(src Source) (*Config, error) {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	for key, val := range leafDefaults() {
		v.SetDefault(key, val)
		if err := v.BindEnv(key); err != nil {
			return nil, fmt.Errorf("bind environment for %s: %w", key, err)
		}
	}

	var lines map[string]int // dotted key → line in the file, for validation errors
	if src.Path != "" {
		data, err := os.ReadFile(src.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !src.Explicit:
			// No file at the default path: defaults, environment and flags only.
		case err != nil:
			return nil, fmt.Errorf("config file %s: %w", src.Path, err)
		default:
			if err := CheckYAML(src.Path, data); err != nil {
				return nil, err
			}
			lines = keyLines(data)
			v.SetConfigType("yaml")
			if err := v.ReadConfig(strings.NewReader(string(data))); err != nil {
				return nil, fmt.Errorf("config file %s: %w", src.Path, err)
			}
		}
	}

	for key, f := range src.Flags {
		if f != nil && f.Changed {
			if err := v.BindPFlag(key, f); err != nil {
				return nil, fmt.Errorf("bind flag --%s: %w", f.Name, err)
			}
		}
	}

	cfg := Defaults()
	decode := func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.WeaklyTypedInput = true // environment variables and flags arrive as strings
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	}
	if err := v.Unmarshal(&cfg, decode); err != nil {
		return nil, fmt.Errorf("configuration (file %s, DROVER_* environment, flags): %w", orNone(src.Path), err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuration (file %s): %w", orNone(src.Path), locate(src.Path, lines, err))
	}
	return &cfg, nil
}

func orNone(p string) string {
	if p == "" {
		return "none"
	}
	return p
}

// leafDefaults flattens Defaults() into dotted keys, so viper knows every key (and so every
// DROVER_* variable) even when the file does not mention it. Lists are left out: they can only
// come from the file.
func leafDefaults() map[string]any {
	out := map[string]any{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			key := t.Field(i).Tag.Get("mapstructure")
			if prefix != "" {
				key = prefix + "." + key
			}
			fv := v.Field(i)
			switch {
			case fv.Kind() == reflect.Struct:
				walk(key, fv)
			case fv.Kind() == reflect.Slice:
			default:
				out[key] = fv.Interface()
			}
		}
	}
	walk("", reflect.ValueOf(Defaults()))
	return out
}

// CheckYAML checks a config file's keys and value types against Config before anything is
// decoded, so an operator learns the file, line and dotted key of every mistake.
func CheckYAML(file string, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s: not valid YAML: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file: all defaults
	}
	var errs []error
	checkNode(file, doc.Content[0], reflect.TypeOf(Config{}), "", &errs)
	return errors.Join(errs...)
}

var durationType = reflect.TypeOf(time.Duration(0))

func checkNode(file string, n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Tag == "!!null" {
		return
	}
	fail := func(format string, args ...any) {
		*errs = append(*errs, fmt.Errorf("config file %s:%d: %s: %s", file, n.Line, path, fmt.Sprintf(format, args...)))
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			fail("expected a duration such as 5s or 250ms")
		} else if _, err := time.ParseDuration(n.Value); err != nil {
			fail("expected a duration such as 5s or 250ms, got %q", n.Value)
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			fail("expected a mapping of keys")
			return
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			fields[t.Field(i).Tag.Get("mapstructure")] = t.Field(i).Type
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := k.Value
			if path != "" {
				key = path + "." + k.Value
			}
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, fmt.Errorf("config file %s:%d: unknown key %q (known here: %s)",
					file, k.Line, key, strings.Join(sortedKeys(fields), ", ")))
				continue
			}
			checkNode(file, val, ft, key, errs)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			fail("expected a list")
			return
		}
		for i, item := range n.Content {
			checkNode(file, item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case n.Kind != yaml.ScalarNode:
		fail("expected a single value, got a %s", kindName(n.Kind))
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		if n.Tag != "!!int" {
			fail("expected an integer, got %q", n.Value)
		}
	case t.Kind() == reflect.Float64:
		if n.Tag != "!!int" && n.Tag != "!!float" {
			fail("expected a number, got %q", n.Value)
		}
	case t.Kind() == reflect.Bool:
		if n.Tag != "!!bool" {
			fail("expected true or false, got %q", n.Value)
		}
	}
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "value"
	}
}

func sortedKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// keyLines maps every dotted key of a config file ("agent.interval", "hypervisors[0].name") to
// the line it is on.
func keyLines(data []byte) map[string]int {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	out := map[string]int{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				if path != "" {
					key = path + "." + key
				}
				out[key] = n.Content[i].Line
				walk(n.Content[i+1], key)
			}
		case yaml.SequenceNode:
			for i, item := range n.Content {
				key := fmt.Sprintf("%s[%d]", path, i)
				out[key] = item.Line
				walk(item, key)
			}
		}
	}
	walk(doc.Content[0], "")
	return out
}

// locate prefixes each *FieldError in err with the file and line of its key (or of the nearest
// enclosing key the file has), so an operator sees where to fix it. Keys the file does not
// mention (defaults, environment, flags) are left as they are.
func locate(file string, lines map[string]int, err error) error {
	if len(lines) == 0 {
		return err
	}
	one := func(e error) error {
		var fe *FieldError
		if !errors.As(e, &fe) {
			return e
		}
		for key := fe.Key; key != ""; {
			if line, ok := lines[key]; ok {
				return fmt.Errorf("config file %s:%d: %w", file, line, e)
			}
			i := strings.LastIndexAny(key, ".[")
			if i < 0 {
				break
			}
			key = key[:i]
		}
		return e
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return one(err)
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, one(e))
	}
	return errors.Join(out...)
}
