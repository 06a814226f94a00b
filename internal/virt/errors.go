package virt

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"libvirt.org/go/libvirt"
)

// Errors callers can test with errors.Is on any error this package returns.
var (
	// ErrNoDomain: the hypervisor has no domain of that name.
	ErrNoDomain = errors.New("no such domain")
	// ErrDomainExists: a domain of that name or UUID is already defined or running.
	ErrDomainExists = errors.New("domain already exists")
	// ErrWrongState: the domain's state does not allow the operation, e.g. destroying a domain that
	// is not running or starting one that already is.
	ErrWrongState = errors.New("domain state does not allow this")
	// ErrUnreachable: libvirtd could not be reached, or the connection to it broke.
	ErrUnreachable = errors.New("hypervisor unreachable")
	// ErrTLS: a qemu+tls connection failed on certificates: a file of the pkipath is missing,
	// libvirtd's certificate is not trusted or does not name the host, or libvirtd refused ours.
	ErrTLS = errors.New("TLS certificates refused")
)

// hintTestbed is the last line of every "cannot reach libvirtd" hint.
const hintTestbed = "on the testbed: scripts/testbed status"

// Error is a failed operation on one hypervisor. Err is the cause: a libvirt.Error, a context
// error, or a validation error.
type Error struct {
	Hypervisor string // the Conn's name, e.g. hv1
	Op         string // what was attempted, e.g. `start domain "vm1"`
	Err        error
	Hint       string // what to check or do next; may be empty
}

func (e *Error) Error() string {
	msg := e.Err.Error()
	var lerr libvirt.Error
	if errors.As(e.Err, &lerr) {
		msg = lerr.Message // the binding's own format adds codes nobody reads
	}
	s := e.Hypervisor + ": " + e.Op + ": " + msg
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is maps libvirt's error codes onto the package's sentinel errors.
func (e *Error) Is(target error) bool {
	var lerr libvirt.Error
	if !errors.As(e.Err, &lerr) {
		return false
	}
	switch target {
	case ErrNoDomain:
		return lerr.Code == libvirt.ERR_NO_DOMAIN
	case ErrDomainExists:
		// QEMU and the test driver report a clash as a failed operation; only the text tells
		return lerr.Code == libvirt.ERR_DOM_EXIST ||
			lerr.Code == libvirt.ERR_OPERATION_FAILED && (strings.Contains(lerr.Message, "already exists") ||
				strings.Contains(lerr.Message, "already defined"))
	case ErrWrongState:
		return lerr.Code == libvirt.ERR_OPERATION_INVALID
	case ErrUnreachable:
		return unreachable(lerr)
	case ErrTLS:
		return tlsProblem(lerr)
	}
	return false
}

// tlsTexts are what libvirt's messages say when a TLS connection fails on certificates, on
// either side ("Unable to read TLS confirmation" is the client's view of libvirtd refusing it).
var tlsTexts = []string{"certificate", "tls confirmation", "tls handshake", "distinguished name"}

// tlsProblem reports whether a libvirt error is a TLS certificate failure rather than a daemon
// that is not there.
func tlsProblem(lerr libvirt.Error) bool {
	if lerr.Domain != libvirt.FROM_RPC && lerr.Domain != libvirt.FROM_REMOTE || lerr.Code == libvirt.ERR_OPERATION_TIMEOUT {
		return false
	}
	msg := strings.ToLower(lerr.Message)
	for _, s := range tlsTexts {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// hintTLS is the hint for a TLS failure.
const hintTLS = "check the TLS files: the URI's pkipath directory (default /etc/pki/libvirt and /etc/pki/CA) needs " +
	"cacert.pem (the CA that signed the hypervisor's certificate), clientcert.pem and clientkey.pem; the " +
	"hypervisor's server certificate must name the host or address of the URI, and its libvirtd's " +
	"tls_allowed_dn_list must admit our client certificate's DN (virt-pki-query-dn clientcert.pem); " +
	"libvirtd's log says which side refused. " + hintTestbed

// unreachable reports whether a libvirt error means the daemon is gone rather than that it refused.
func unreachable(lerr libvirt.Error) bool {
	if tlsProblem(lerr) {
		return false
	}
	switch lerr.Code {
	case libvirt.ERR_NO_CONNECT, libvirt.ERR_INVALID_CONN, libvirt.ERR_RPC, libvirt.ERR_OPERATION_TIMEOUT:
		return true
	case libvirt.ERR_SYSTEM_ERROR, libvirt.ERR_INTERNAL_ERROR:
		// socket errors ("unable to connect to server", "client socket is closed")
		return lerr.Domain == libvirt.FROM_RPC || lerr.Domain == libvirt.FROM_REMOTE
	}
	return false
}

// hintUnreachable begins the hint for a libvirtd that does not answer; the URI follows.
const hintUnreachable = "is libvirtd running at "

// wrap turns err from operation op into an *Error with a hint, or returns nil for nil.
func (c *Conn) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Hypervisor: c.name, Op: op, Err: err}
	var lerr libvirt.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		e.Hint = "libvirtd at " + c.uri + " did not answer in time: is it overloaded or hung? " + hintTestbed
	case errors.Is(err, context.Canceled):
	case errors.As(err, &lerr) && tlsProblem(lerr):
		e.Hint = hintTLS
	case errors.As(err, &lerr) && unreachable(lerr):
		e.Hint = hintUnreachable + c.uri + " and listening? " + hintTestbed
	case errors.As(err, &lerr) && lerr.Code == libvirt.ERR_NO_DOMAIN:
		e.Hint = "List shows the domains this hypervisor has"
	case errors.As(err, &lerr) && (lerr.Code == libvirt.ERR_XML_ERROR || lerr.Code == libvirt.ERR_XML_DETAIL ||
		lerr.Code == libvirt.ERR_CONFIG_UNSUPPORTED):
		e.Hint = "the domain XML was refused: build it with DomainSpec.XML"
	}
	return e
}

// opf formats an operation name for Error.Op.
func opf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
