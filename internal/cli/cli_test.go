package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/drover-hpc/drover/internal/db"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/sql/migrations"
)

// run executes drover with args and returns exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// useSchema points drover's database URL (DROVER_DATABASE_URL) at schema for this test.
func useSchema(t *testing.T, schema string) {
	t.Helper()
	url := testenv.DatabaseConfig(t).URL
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	t.Setenv("DROVER_DATABASE_URL", url+sep+"search_path="+schema)
}

// testbedConfig returns the testbed's config file text, with replacements applied, written to a
// temporary file.
func testbedConfig(t *testing.T, replace ...string) string {
	t.Helper()
	testenv.Config(t) // skips or fails when there is no testbed
	b, err := os.ReadFile(testenv.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(text, replace[i]) {
			t.Fatalf("testbed config has no %q", replace[i])
		}
		text = strings.Replace(text, replace[i], replace[i+1], 1)
	}
	p := filepath.Join(t.TempDir(), "drover.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersionNeedsNoConfig(t *testing.T) {
	code, out, _ := run(t, "--config", "/nonexistent/drover.yaml", "version")
	if code != 0 || !strings.HasPrefix(out, "drover ") {
		t.Fatalf("code %d out %q", code, out)
	}
}

func TestBadConfigNamesKeyAndFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("database:\n  max_conns: lots\nslurm:\n  rest_ulr: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := run(t, "--config", p, "check")
	if code == 0 {
		t.Fatal("check ran with a broken config")
	}
	for _, want := range []string{p + ":2: database.max_conns: expected an integer", `:4: unknown key "slurm.rest_ulr"`} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

var columns = regexp.MustCompile(`\s{2,}`)

// statuses reads the check table: component → status. Columns are separated by two or more spaces.
func statuses(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := columns.Split(line, -1); len(f) >= 3 && (f[2] == "ok" || f[2] == "UNREACHABLE") {
			m[f[0]] = f[2]
		}
	}
	return m
}

func TestCheckTestbed(t *testing.T) {
	code, out, errs := run(t, "--config", testbedConfig(t), "check")
	if code != 0 {
		t.Fatalf("check exit %d\n%s%s", code, out, errs)
	}
	st := statuses(out)
	for _, c := range []string{"postgres", "slurmrestd", "slurmctld", "libvirt hv1", "libvirt hv2", "bmc hv1", "bmc hv2"} {
		if st[c] != "ok" {
			t.Errorf("%s: %q\n%s", c, st[c], out)
		}
	}
	if !strings.Contains(out, "PostgreSQL 1") || !strings.Contains(out, "Slurm 22.05") || !strings.Contains(out, "libvirt 9.") {
		t.Errorf("versions missing:\n%s", out)
	}
}

// A component that does not answer is named, with why and what to fix, and check exits non-zero.
func TestCheckNamesWhatIsDown(t *testing.T) {
	cfg := testbedConfig(t,
		"198.18.0.3:16514/system", "198.18.0.3:1/system", // hv2's libvirtd: nothing on port 1
	)
	code, out, errs := run(t, "--config", cfg, "check", "--timeout", "5s")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
	}
	st := statuses(out)
	if st["libvirt hv2"] != "UNREACHABLE" {
		t.Fatalf("libvirt hv2 = %q\n%s", st["libvirt hv2"], out)
	}
	for c, s := range st {
		if c != "libvirt hv2" && s != "ok" {
			t.Errorf("%s = %s, only hv2's libvirt was broken", c, s)
		}
	}
	if !strings.Contains(out, "libvirt hv2: hv2: connect to qemu+tls://198.18.0.3:1/system") || !strings.Contains(out, "fix: start libvirtd") {
		t.Errorf("no reason or fix for hv2:\n%s", out)
	}
	if !strings.Contains(errs, "1 of 7 components unreachable") {
		t.Errorf("stderr: %q", errs)
	}
}

// hv2 with a pkipath that holds no certificates: its row says the TLS files were refused and
// what to fix, not that libvirtd is down.
func TestCheckTLSProblem(t *testing.T) {
	hv2 := testenv.Config(t).Hypervisors[1]
	if !strings.Contains(hv2.URI, "?pkipath=") {
		t.Fatalf("testbed's hv2 URI %q has no pkipath", hv2.URI)
	}
	empty := t.TempDir()
	cfg := testbedConfig(t, hv2.URI, hv2.URI[:strings.Index(hv2.URI, "?pkipath=")]+"?pkipath="+empty)
	code, out, _ := run(t, "--config", cfg, "check", "--timeout", "5s")
	st := statuses(out)
	if code != 1 || st["libvirt hv2"] != "UNREACHABLE" || st["libvirt hv1"] != "ok" {
		t.Fatalf("exit %d, want 1 with only hv2's libvirt unreachable\n%s", code, out)
	}
	for _, want := range []string{"Cannot read CA certificate '" + empty + "/cacert.pem'", "fix: the TLS connection failed on certificates"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckBadTokenIsAnAuthProblem(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	// well-formed but signed with another key: slurmrestd refuses it
	bad := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjQxMDI0NDQ4MDAsImlhdCI6MTcwMDAwMDAwMCwic3VuIjoicm9vdCJ9.c2lnbmF0dXJlLW9mLWFub3RoZXIta2V5LTAwMDAwMDAwMDA"
	if err := os.WriteFile(tok, []byte(bad+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testbedConfig(t, "token_file: "+testenv.Config(t).Slurm.TokenFile, "token_file: "+tok)
	code, out, _ := run(t, "--config", cfg, "check")
	if code != 1 || statuses(out)["slurmrestd"] != "UNREACHABLE" {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "scontrol token") || strings.Contains(out, bad) {
		t.Fatalf("want the token fix, never the token itself:\n%s", out)
	}
}

// drover db migrate: twice changes nothing; down then up round-trips. Each run uses a fresh schema.
func TestDBMigrateCommand(t *testing.T) {
	schema, _ := testenv.Schema(t)
	useSchema(t, schema)
	cfg := testbedConfig(t)
	ms, err := db.LoadMigrations(migrations.FS)
	if err != nil || len(ms) == 0 {
		t.Fatalf("embedded migrations: %v", err)
	}
	newest := fmt.Sprintf("%03d_%s", ms[len(ms)-1].Version, ms[len(ms)-1].Name)
	all := strconv.Itoa(len(ms))
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"db", "migrate"}, "applied 001_init"},
		{[]string{"db", "migrate"}, "schema is up to date"},
		{[]string{"db", "status"}, "applied"},
		{[]string{"db", "migrate", "--down", "1"}, "reverted " + newest},
		{[]string{"db", "status"}, "pending"},
		{[]string{"db", "migrate"}, "applied " + newest},
		{[]string{"db", "migrate", "--down", all}, "reverted 001_init"},
		{[]string{"db", "migrate"}, "applied 001_init"},
	}
	for _, s := range steps {
		code, out, errs := run(t, append([]string{"--config", cfg}, s.args...)...)
		if code != 0 || !strings.Contains(out, s.want) {
			t.Fatalf("drover %v: exit %d, want %q in\n%s%s", s.args, code, s.want, out, errs)
		}
	}
}
