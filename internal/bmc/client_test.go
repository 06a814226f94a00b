package bmc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/drover-hpc/drover/internal/config"
)

const secret = "S3cr3tPassw0rd" // must never show up in an error

func TestNewSettings(t *testing.T) {
	base := config.BMC{Host: "10.0.0.5", Username: "admin"}
	tests := []struct {
		name    string
		cfg     func(c *config.BMC)
		pw      string
		want    settings
		wantErr string
	}{
		{
			name: "defaults",
			cfg:  func(c *config.BMC) {},
			pw:   secret,
			want: settings{Interface: "lanplus", Host: "10.0.0.5", Port: 623, Username: "admin", Password: secret, CipherSuite: 3, Timeout: 5 * time.Second},
		},
		{
			name: "explicit values kept",
			cfg: func(c *config.BMC) {
				c.Interface, c.Port, c.CipherSuite, c.Timeout = "LAN", 16623, 17, 2*time.Second
			},
			pw:   "x",
			want: settings{Interface: "lan", Host: "10.0.0.5", Port: 16623, Username: "admin", Password: "x", CipherSuite: 17, Timeout: 2 * time.Second},
		},
		{
			name: "open needs no host or user",
			cfg:  func(c *config.BMC) { c.Interface, c.Host, c.Username = "open", "", "" },
			want: settings{Interface: "open", Port: 623, CipherSuite: 3, Timeout: 5 * time.Second},
		},
		{name: "unknown interface", cfg: func(c *config.BMC) { c.Interface = "redfish" }, wantErr: `interface "redfish" is not one of`},
		{name: "no host", cfg: func(c *config.BMC) { c.Host = "" }, wantErr: "set bmc.host"},
		{name: "no user", cfg: func(c *config.BMC) { c.Username = "" }, wantErr: "set bmc.username"},
		{name: "user too long", cfg: func(c *config.BMC) { c.Username = strings.Repeat("u", 17) }, wantErr: "longer than IPMI's 16 bytes"},
		{name: "bad port", cfg: func(c *config.BMC) { c.Port = 70000 }, wantErr: "not a UDP port"},
		{name: "bad cipher suite", cfg: func(c *config.BMC) { c.CipherSuite = 42 }, wantErr: "cipher suite 42"},
		{name: "password too long for lanplus", cfg: func(c *config.BMC) {}, pw: secret + "0123456789", wantErr: "longer than the 20 bytes"},
		// 17 bytes fit IPMI 2.0 but not IPMI 1.5
		{name: "password too long for lan", cfg: func(c *config.BMC) { c.Interface = "lan" }, pw: secret + "abc", wantErr: "longer than the 16 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.cfg(&cfg)
			got, err := newSettings(cfg, tt.pw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("newSettings =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestSettingsAddr(t *testing.T) {
	for _, tt := range []struct {
		s    settings
		want string
	}{
		{settings{Interface: "lanplus", Host: "127.0.0.1", Port: 16623}, "bmc 127.0.0.1:16623 (lanplus)"},
		{settings{Interface: "lan", Host: "fe80::1", Port: 623}, "bmc [fe80::1]:623 (lan)"},
		{settings{Interface: "open"}, "bmc /dev/ipmi0 (open)"},
	} {
		if got := tt.s.where(); got != tt.want {
			t.Errorf("where() = %q, want %q", got, tt.want)
		}
	}
}

func TestFirmwareRevision(t *testing.T) {
	for _, tt := range []struct {
		major, minor uint8
		want         string
	}{
		{1, 0x00, "1.00"},
		{2, 0x05, "2.05"},
		{3, 0x10, "3.10"},    // BCD: 10h is ten, not sixteen
		{0x85, 0x42, "5.42"}, // bit 7 of the major byte is "device available", not part of the number
	} {
		if got := firmwareRevision(tt.major, tt.minor); got != tt.want {
			t.Errorf("firmwareRevision(%#x, %#x) = %q, want %q", tt.major, tt.minor, got, tt.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassifyConnect(t *testing.T) {
	// go-ipmi 0.9 formats the errors of its cipher suite loop into text (%v), losing the chain:
	// these are the messages it produces, built the way it builds them.
	flattened := func(inner error) error {
		return fmt.Errorf("connect20 failed after try all cipher suite ids ([3]), errs: \n%v",
			errors.Join(fmt.Errorf("cmd: rakp1 failed with cipher suite id (3), err: validate rakp2 message failed, err: %w", inner)))
	}
	netTimeout := &net.OpError{Op: "read", Net: "udp", Err: timeoutErr{}}
	tests := []struct {
		name string
		err  error
		want failure
	}{
		{"wrong password (flattened)", flattened(fmt.Errorf("RAKP2 authentication code mismatch: %w", client.ErrRAKPAuthentication)), failBadPassword},
		{"wrong password (wrapped)", fmt.Errorf("x: %w", client.ErrRAKPAuthentication), failBadPassword},
		{"integrity check value", flattened(types.NewRmcpStatusError(types.RmcpStatusCodeInvalidIntegrityCheckValue)), failBadPassword},
		{"unknown user (flattened)", flattened(types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedName)), failBadUser},
		{"unknown user (wrapped)", fmt.Errorf("x: %w", types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedName)), failBadUser},
		{"unknown user, IPMI 1.5", fmt.Errorf("GetSessionChallenge failed, err: %w", types.NewResponseError(0x81, "Invalid user name")), failBadUser},
		{"privilege", flattened(types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedRoleOfPriLevel)), failPrivilege},
		{"privilege, IPMI 1.5", fmt.Errorf("SetSessionPrivilegeLevel failed: %w", types.NewResponseError(0x86, "x")), failPrivilege},
		{"cipher suite", flattened(types.NewRmcpStatusError(types.RmcpStatusCodeNoCipherSuiteMatch)), failCipher},
		{"port closed", fmt.Errorf("cmd: Get Channel Authentication Capabilities failed, err: read: %w", &net.OpError{Op: "read", Net: "udp", Err: syscall.ECONNREFUSED}), failUnreachable},
		{"no answer", fmt.Errorf("cmd: Get Channel Authentication Capabilities failed, err: %w", netTimeout), failUnreachable},
		{"context deadline", fmt.Errorf("cmd: Get Channel Authentication Capabilities failed, err: %w", context.DeadlineExceeded), failUnreachable},
		{"silent Activate Session (IPMI 1.5 wrong password)", fmt.Errorf("ActivateSession failed, err: %w", netTimeout), failNoAnswerAuth},
		{"something else", errors.New("unpack failed"), failOther},
		{"other completion code", fmt.Errorf("x: %w", types.NewResponseError(0xc1, "invalid command")), failOther},
	}
	for _, tt := range tests {
		if got := classifyConnect(tt.err); got != tt.want {
			t.Errorf("%s: classifyConnect(%q) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

// The messages of failed set-ups say where, what and what to do, and never the password.
func TestConnectError(t *testing.T) {
	c := &Client{s: settings{Interface: "lanplus", Host: "127.0.0.1", Port: 16623, Username: "admin", Password: secret, CipherSuite: 3, Timeout: time.Second}}
	ctx := context.Background()
	tests := []struct {
		name  string
		err   error
		is    error
		wants []string
	}{
		{"password", fmt.Errorf("x: %w", client.ErrRAKPAuthentication), ErrAuth, []string{"127.0.0.1:16623", `wrong password for user "admin"`, "bmc.password_file"}},
		{"user", types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedName), ErrAuth, []string{`no user "admin"`, "bmc.username"}},
		{"unreachable", &net.OpError{Op: "read", Net: "udp", Err: syscall.ECONNREFUSED}, ErrUnreachable, []string{"127.0.0.1:16623", "nothing listens on UDP port 16623", "scripts/testbed up ipmi"}},
		{"timeout", &net.OpError{Op: "read", Net: "udp", Err: timeoutErr{}}, ErrUnreachable, []string{"no answer after 1.5s", "bmc.port"}},
		{"cipher", types.NewRmcpStatusError(types.RmcpStatusCodeNoCipherSuiteMatch), nil, []string{"cipher suite 3", "bmc.cipher_suite"}},
	}
	for _, tt := range tests {
		err := c.connectError(ctx, tt.err, 1500*time.Millisecond)
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: %v is not %v", tt.name, err, tt.is)
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: %v does not wrap the library's error", tt.name, err)
		}
		for _, w := range tt.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not contain %q", tt.name, err, w)
			}
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %q contains the password or a line break", tt.name, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.connectError(cancelled, errors.New("x"), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled dial gives %v, want context.Canceled", err)
	}
}

// freeUDPPort returns a loopback UDP port nothing listens on (it was free a moment ago).
func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	return port
}

func TestDialClosedPort(t *testing.T) {
	port := freeUDPPort(t)
	start := time.Now()
	_, err := Dial(context.Background(), config.BMC{Host: "127.0.0.1", Port: port, Username: "admin", Password: secret, Timeout: 2 * time.Second})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)) || strings.Contains(err.Error(), secret) {
		t.Errorf("error %q does not name the address, or shows the password", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v", took)
	}
}

// A BMC that swallows every datagram: Dial gives up after the configured timeout.
func TestDialSilentBMC(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	for _, intf := range []string{"lanplus", "lan"} {
		start := time.Now()
		_, err := Dial(context.Background(), config.BMC{Interface: intf, Host: "127.0.0.1", Port: port, Username: "admin", Password: secret, Timeout: time.Second})
		took := time.Since(start)
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("%s: err = %v, want ErrUnreachable", intf, err)
		}
		if took > 2*time.Second {
			t.Errorf("%s: took %v with a 1s timeout", intf, took)
		}
	}
	// the caller's context bounds it too
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Dial(ctx, config.BMC{Host: "127.0.0.1", Port: port, Username: "admin", Password: secret, Timeout: time.Minute}); err == nil {
		t.Error("dial to a silent BMC succeeded")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v with a 300ms context", took)
	}
}

func TestDialPasswordFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	_, err := Dial(context.Background(), config.BMC{Host: "127.0.0.1", Username: "admin", PasswordFile: missing})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("err = %v, want one naming %s", err, missing)
	}
	// the file's contents are trimmed: a trailing newline is not part of the password
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte(strings.Repeat("p", 20)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	_, err = Dial(context.Background(), config.BMC{Host: "127.0.0.1", Port: port, Username: "admin", PasswordFile: file, Timeout: time.Second})
	if !errors.Is(err, ErrUnreachable) { // not "password too long": the 20 bytes fit once trimmed
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

func TestDialOpenWithoutDevice(t *testing.T) {
	if _, err := os.Stat(openDevice); err == nil {
		t.Skipf("%s exists here", openDevice)
	}
	_, err := Dial(context.Background(), config.BMC{Interface: "open", Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), openDevice) || !strings.Contains(err.Error(), "ipmi_devintf") {
		t.Fatalf("err = %v, want one naming %s and the kernel modules", err, openDevice)
	}
}

func TestClosedClient(t *testing.T) {
	c := &Client{s: settings{Interface: "lanplus", Host: "127.0.0.1", Port: 1, Timeout: time.Second}}
	ctx := context.Background()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := c.Sensors(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Sensors after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Info(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Info after Close: %v, want ErrClosed", err)
	}
}
