package bmc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/drover-hpc/drover/internal/config"
)

// Defaults for the config.BMC fields left empty.
const (
	DefaultPort        = 623
	DefaultCipherSuite = 3 // RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128: offered by nearly every BMC
	DefaultTimeout     = 5 * time.Second
	DefaultInterface   = "lanplus"

	openDevice = "/dev/ipmi0" // what the open interface uses (go-ipmi opens device 0)
)

// Errors callers may test for with errors.Is.
var (
	// ErrAuth: the BMC answered but refused the user name or password.
	ErrAuth = errors.New("credentials refused")
	// ErrUnreachable: nothing answered at the BMC's address within the time allowed.
	ErrUnreachable = errors.New("unreachable")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("client closed")
)

// Client is a session with one BMC. It is safe for concurrent use; calls are serialised, and each
// takes at most the configured timeout. A session the BMC stops answering (a BMC reset forgets
// its sessions) is dropped and opened again, within the same call when time is left, else by the
// next one. Close the Client when done: the IPMI library keeps the session alive in the background.
type Client struct {
	s settings

	mu     sync.Mutex
	ipmi   *client.Client // nil when there is no session (not yet, or dropped after an error)
	sdrs   sdrCache
	closed bool
}

// Info identifies a BMC (IPMI Get Device ID), for `drover check`.
type Info struct {
	Addr             string // host:port, or the device of the open interface
	Interface        string // lanplus, lan or open
	Firmware         string // firmware revision, "major.minor", e.g. "2.10"
	IPMIVersion      string // e.g. "2.0"
	ManufacturerID   uint32 // IANA enterprise number
	ProductID        uint16
	DeviceID         uint8
	DeviceRevision   uint8
	UpdateInProgress bool // the BMC says a firmware or SDR update, or its self-initialisation, is running
}

// settings is config.BMC with defaults applied and the password resolved.
type settings struct {
	Interface   string
	Host        string
	Port        int
	Username    string
	Password    string
	CipherSuite int
	Timeout     time.Duration
}

// addr is where the BMC is, for messages: host:port, or the device of the open interface.
func (s settings) addr() string {
	if s.Interface == "open" {
		return openDevice
	}
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// where prefixes every error of this client.
func (s settings) where() string { return "bmc " + s.addr() + " (" + s.Interface + ")" }

// newSettings applies defaults to cfg and checks it; password is the resolved secret. The
// password is never part of an error.
func newSettings(cfg config.BMC, password string) (settings, error) {
	s := settings{
		Interface:   strings.ToLower(cfg.Interface),
		Host:        cfg.Host,
		Port:        cfg.Port,
		Username:    cfg.Username,
		Password:    password,
		CipherSuite: cfg.CipherSuite,
		Timeout:     cfg.Timeout,
	}
	if s.Interface == "" {
		s.Interface = DefaultInterface
	}
	if s.Port == 0 {
		s.Port = DefaultPort
	}
	if s.CipherSuite == 0 {
		// suite 0 (no authentication) is never wanted; 0 means the key was left out
		s.CipherSuite = DefaultCipherSuite
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	switch s.Interface {
	case "lanplus", "lan":
		if s.Host == "" {
			return s, fmt.Errorf("bmc: no host for the %s interface: set bmc.host", s.Interface)
		}
		if s.Port < 1 || s.Port > 65535 {
			return s, fmt.Errorf("%s: port %d is not a UDP port", s.where(), s.Port)
		}
		if s.Username == "" {
			return s, fmt.Errorf("%s: no user name: set bmc.username", s.where())
		}
		if len(s.Username) > 16 {
			return s, fmt.Errorf("%s: user name %q is longer than IPMI's 16 bytes", s.where(), s.Username)
		}
		maxPw := 20 // IPMI 2.0 passwords
		if s.Interface == "lan" {
			maxPw = 16 // IPMI 1.5
		}
		if len(s.Password) > maxPw {
			return s, fmt.Errorf("%s: the password is longer than the %d bytes IPMI allows on this interface", s.where(), maxPw)
		}
		if s.CipherSuite < 1 || s.CipherSuite > 19 {
			return s, fmt.Errorf("%s: cipher suite %d is not one of IPMI's 1-19 (3 is the usual one)", s.where(), s.CipherSuite)
		}
	case "open":
	default:
		return s, fmt.Errorf("bmc: interface %q is not one of lanplus, lan, open", cfg.Interface)
	}
	return s, nil
}

// Dial opens a session with the BMC of cfg and returns a Client for it. The password is
// cfg.Password, or else the trimmed contents of cfg.PasswordFile. Opening the session takes at
// most cfg.Timeout (DefaultTimeout when zero) and stops early when ctx ends.
func Dial(ctx context.Context, cfg config.BMC) (*Client, error) {
	password, err := config.Secret(cfg.Password, cfg.PasswordFile, "bmc password")
	if err != nil {
		return nil, fmt.Errorf("bmc %s: %w", cmp.Or(cfg.Host, cfg.Interface), err)
	}
	s, err := newSettings(cfg, password)
	if err != nil {
		return nil, err
	}
	c := &Client{s: s}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.session(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Addr is where the BMC is: host:port, or the device of the open interface.
func (c *Client) Addr() string { return c.s.addr() }

// Close ends the session (Close Session, bounded by ctx and the configured timeout) and
// releases the socket. It is safe to call more than once.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.ipmi == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.Timeout)
	defer cancel()
	err := c.ipmi.Close(ctx)
	c.ipmi = nil
	if err != nil {
		return fmt.Errorf("%s: close session: %w", c.s.where(), err)
	}
	return nil
}

// Info asks the BMC who it is (Get Device ID).
func (c *Client) Info(ctx context.Context) (Info, error) {
	ctx, cancel := context.WithTimeout(ctx, c.s.Timeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	var info Info
	err := c.do(ctx, func(ic *client.Client) error {
		res, err := ic.GetDeviceID(ctx)
		if err != nil {
			return fmt.Errorf("get device id: %w", err)
		}
		info = Info{
			Addr:             c.s.addr(),
			Interface:        c.s.Interface,
			Firmware:         firmwareRevision(res.MajorFirmwareRevision, res.MinorFirmwareRevision),
			IPMIVersion:      fmt.Sprintf("%d.%d", res.MajorIPMIVersion, res.MinorIPMIVersion),
			ManufacturerID:   uint32(res.ManufacturerID),
			ProductID:        res.ProductID,
			DeviceID:         res.DeviceID,
			DeviceRevision:   res.DeviceRevision,
			UpdateInProgress: !res.DeviceAvailable,
		}
		return nil
	})
	return info, err
}

// firmwareRevision formats Get Device ID's firmware revision: the major part is binary (7 bits),
// the minor part two BCD digits (0x05 is ".05", 0x10 is ".10").
func firmwareRevision(major, minorBCD uint8) string {
	return fmt.Sprintf("%d.%02x", major&0x7F, minorBCD)
}

// session returns the open session, opening one when there is none. c.mu must be held.
func (c *Client) session(ctx context.Context) (*client.Client, error) {
	if c.closed {
		return nil, fmt.Errorf("%s: %w", c.s.where(), ErrClosed)
	}
	if c.ipmi != nil {
		return c.ipmi, nil
	}
	ic, err := c.newIPMI()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.s.where(), err)
	}
	start := time.Now()
	if err := ic.Connect(ctx); err != nil {
		discard(ic)
		return nil, c.connectError(ctx, err, time.Since(start))
	}
	c.ipmi = ic
	return ic, nil
}

// newIPMI builds an unconnected go-ipmi client from the settings.
func (c *Client) newIPMI() (*client.Client, error) {
	s := c.s
	if s.Interface == "open" {
		ic, err := client.NewOpenClient()
		if err != nil {
			return nil, err
		}
		return ic.WithTimeout(s.Timeout), nil
	}
	ic, err := client.NewClient(s.Host, s.Port, s.Username, s.Password)
	if err != nil {
		return nil, err
	}
	// Each UDP exchange gets a quarter of the budget and is tried three times at most, so that one
	// lost datagram costs a retry, not the whole call. The cipher suite is pinned: letting go-ipmi
	// probe for the "best" one costs about 6 s per session. Reading sensors needs only the User
	// privilege, so no more is asked for.
	exchange := min(max(s.Timeout/4, 250*time.Millisecond), 2*time.Second)
	ic.WithInterface(client.Interface(s.Interface)).
		WithTimeout(exchange).
		WithRetry(2).
		WithMaxPrivilegeLevel(types.PrivilegeLevelUser)
	if s.Interface == "lanplus" {
		ic.WithCipherSuiteID(types.CipherSuiteID(s.CipherSuite))
	}
	return ic, nil
}

// discard releases a go-ipmi client without talking to the BMC: with an already cancelled
// context its Close sends nothing and only closes the socket (or device).
func discard(ic *client.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = ic.Close(ctx)
}

// do runs op on the session, opening one if needed. A BMC that was reset forgets its sessions
// and ignores their requests, so when op fails without an answer on a session that had been
// working, do opens a new session and runs op once more, within the same ctx. c.mu must be held.
func (c *Client) do(ctx context.Context, op func(ic *client.Client) error) error {
	for retried := false; ; retried = true {
		fresh := c.ipmi == nil
		ic, err := c.session(ctx)
		if err != nil {
			return err
		}
		err = op(ic)
		if err == nil {
			return nil
		}
		if isCompletion(err) {
			// the BMC answered: the session is fine, the request was not
			return fmt.Errorf("%s: %w", c.s.where(), err)
		}
		c.drop()
		if fresh || retried || ctx.Err() != nil {
			return c.failed(ctx, err)
		}
	}
}

// drop forgets the session after a transport failure; the next call opens a new one.
func (c *Client) drop() {
	if c.ipmi != nil {
		discard(c.ipmi)
		c.ipmi = nil
	}
}

// failed explains an error of an established session that got no answer.
func (c *Client) failed(ctx context.Context, err error) error {
	err = oneLine{err}
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("%s: %w: %w", c.s.where(), ctx.Err(), err)
	}
	if classifyConnect(err) == failUnreachable || ctx.Err() != nil {
		return fmt.Errorf("%s: %w: the BMC stopped answering (reset, or network cut?); the next call opens a new session: %w",
			c.s.where(), ErrUnreachable, err)
	}
	return fmt.Errorf("%s: %w", c.s.where(), err)
}

// failure kinds of session set-up, see classifyConnect.
type failure int

const (
	failOther        failure = iota
	failUnreachable          // no answer, or the port is closed
	failBadUser              // the BMC does not know the user name
	failBadPassword          // the BMC knows the user, the password is wrong
	failPrivilege            // the user may not have the privilege asked for
	failCipher               // the BMC does not offer the cipher suite
	failNoAnswerAuth         // IPMI 1.5: no answer to Activate Session, which is how a wrong password shows
)

// rmcpStatusIs reports whether err is, or (go-ipmi 0.9 flattens the errors of its cipher suite
// loop into text) mentions, the RMCP+ status code.
func rmcpStatusIs(err error, code types.RmcpStatusCode) bool {
	var se *types.RmcpStatusError
	if errors.As(err, &se) {
		return se.StatusCode() == code
	}
	return strings.Contains(err.Error(), types.NewRmcpStatusError(code).Error())
}

// isTimeout reports whether err is a timeout of a UDP exchange or of the context.
func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "no datagram matched") || strings.Contains(msg, "timed out") ||
		strings.Contains(msg, "deadline exceeded")
}

// classifyConnect says why opening a session failed, from the error go-ipmi returned.
func classifyConnect(err error) failure {
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(msg, "connection refused"):
		return failUnreachable
	case errors.Is(err, client.ErrRAKPAuthentication) || strings.Contains(msg, client.ErrRAKPAuthentication.Error()),
		rmcpStatusIs(err, types.RmcpStatusCodeInvalidIntegrityCheckValue):
		return failBadPassword
	case rmcpStatusIs(err, types.RmcpStatusCodeUnauthorizedName), rmcpStatusIs(err, types.RmcpStatusCodeInvalidNameLength):
		return failBadUser
	case rmcpStatusIs(err, types.RmcpStatusCodeInvalidRole), rmcpStatusIs(err, types.RmcpStatusCodeUnauthorizedRoleOfPriLevel):
		return failPrivilege
	case rmcpStatusIs(err, types.RmcpStatusCodeNoCipherSuiteMatch), rmcpStatusIs(err, types.RmcpStatusCodeInvalidAuthAlg),
		rmcpStatusIs(err, types.RmcpStatusCodeInvalidIntegrityAlg), rmcpStatusIs(err, types.RmcpStatusCodeInvalidConfidentAlg):
		return failCipher
	}
	if re, ok := types.IsResponseError(err); ok {
		switch uint8(re.CompletionCode()) {
		case 0x81, 0x82: // Get Session Challenge: invalid user name, null user name not enabled
			return failBadUser
		case 0x86: // Activate Session / Set Session Privilege: requested level not available to user
			return failPrivilege
		}
	}
	if isTimeout(err) {
		if strings.HasPrefix(msg, "ActivateSession failed") {
			return failNoAnswerAuth
		}
		return failUnreachable
	}
	return failOther
}

// oneLine wraps a library error whose text spans lines (go-ipmi joins the errors of its attempts
// with line breaks) so that it fits on a log line; errors.Is and errors.As still see through it.
type oneLine struct{ err error }

func (e oneLine) Error() string { return strings.Join(strings.Fields(e.err.Error()), " ") }
func (e oneLine) Unwrap() error { return e.err }

// connectError explains a failed session set-up: what happened and what to do. ctx is the
// context the attempt ran under (bounded by the configured timeout), took how long it ran.
func (c *Client) connectError(ctx context.Context, err error, took time.Duration) error {
	s := c.s
	w := s.where()
	err = oneLine{err}
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("%s: open session: %w", w, ctx.Err())
	}
	if s.Interface == "open" {
		return fmt.Errorf("%s: open %s: %w (load the ipmi_devintf and ipmi_si kernel modules, run as root, or use interface lanplus)", w, openDevice, err)
	}
	user := strconv.Quote(s.Username)
	switch classifyConnect(err) {
	case failBadPassword:
		return fmt.Errorf("%s: %w: wrong password for user %s: check the file named by bmc.password_file (or bmc.password): %w", w, ErrAuth, user, err)
	case failNoAnswerAuth:
		return fmt.Errorf("%s: %w: no answer to Activate Session for user %s, which is how IPMI 1.5 BMCs reject a wrong password: check bmc.password_file: %w", w, ErrAuth, user, err)
	case failBadUser:
		return fmt.Errorf("%s: %w: the BMC has no user %s: check bmc.username: %w", w, ErrAuth, user, err)
	case failPrivilege:
		return fmt.Errorf("%s: %w: user %s may not open a session with user privilege: give it user or higher on the BMC: %w", w, ErrAuth, user, err)
	case failCipher:
		return fmt.Errorf("%s: the BMC does not accept cipher suite %d: set bmc.cipher_suite to one it offers (ipmitool channel getciphers ipmi): %w", w, s.CipherSuite, err)
	case failUnreachable:
		what := fmt.Sprintf("no answer after %v", took.Round(time.Millisecond))
		if errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused") {
			what = fmt.Sprintf("nothing listens on UDP port %d (port unreachable)", s.Port)
		}
		return fmt.Errorf("%s: %w: %s: check that the BMC is up and that bmc.host and bmc.port are right (local testbed: scripts/testbed up ipmi): %w", w, ErrUnreachable, what, err)
	}
	return fmt.Errorf("%s: open session: %w", w, err)
}
