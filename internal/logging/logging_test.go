package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/drover-hpc/drover/internal/config"
)

func TestJSONAndLevel(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(config.Log{Level: "warn", Format: "json"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hidden")
	log.Warn().Str("hv", "hv1").Msg("shown")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want only the warn line, got %q", buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if m["message"] != "shown" || m["hv"] != "hv1" || m["level"] != "warn" {
		t.Fatalf("fields: %v", m)
	}
}

func TestConsole(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(config.Log{Level: "debug", Format: "console"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug().Msg("hello")
	if !strings.Contains(buf.String(), "DBG") || !strings.Contains(buf.String(), "hello") || strings.HasPrefix(buf.String(), "{") {
		t.Fatalf("console output = %q", buf.String())
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []config.Log{{Level: "loud", Format: "json"}, {Level: "info", Format: "xml"}, {Format: "json"}} {
		if _, err := New(c, &bytes.Buffer{}); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
