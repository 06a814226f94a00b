package virt

import (
	"errors"
	"strings"
	"testing"

	"libvirt.org/go/libvirt"
)

// Certificate failures from libvirt's RPC layer are TLS problems with the TLS hint, never an
// unreachable daemon; a refused socket stays unreachable.
func TestTLSClassification(t *testing.T) {
	c := &Conn{name: "hv2", uri: "qemu+tls://198.18.0.3/system"}
	for _, tc := range []struct {
		lerr             libvirt.Error
		tls, unreachable bool
	}{
		{libvirt.Error{Domain: libvirt.FROM_RPC, Code: libvirt.ERR_SYSTEM_ERROR,
			Message: "Cannot read CA certificate '/etc/drover/pki/cacert.pem': No such file or directory"}, true, false},
		{libvirt.Error{Domain: libvirt.FROM_RPC, Code: libvirt.ERR_SYSTEM_ERROR,
			Message: "Unable to read TLS confirmation: Input/output error"}, true, false},
		{libvirt.Error{Domain: libvirt.FROM_RPC, Code: libvirt.ERR_AUTH_FAILED,
			Message: "authentication failed: Failed to verify peer's certificate"}, true, false},
		{libvirt.Error{Domain: libvirt.FROM_RPC, Code: libvirt.ERR_SYSTEM_ERROR,
			Message: "unable to connect to server at '198.18.0.3:16514': Connection refused"}, false, true},
		// the same words from a driver are not a connection's TLS failure
		{libvirt.Error{Domain: libvirt.FROM_QEMU, Code: libvirt.ERR_OPERATION_FAILED,
			Message: "migration failed: TLS handshake failed"}, false, false},
	} {
		err := c.wrap("connect to "+c.uri, tc.lerr)
		if got := errors.Is(err, ErrTLS); got != tc.tls {
			t.Errorf("%q: ErrTLS %v, want %v", tc.lerr.Message, got, tc.tls)
		}
		if got := errors.Is(err, ErrUnreachable); got != tc.unreachable {
			t.Errorf("%q: ErrUnreachable %v, want %v", tc.lerr.Message, got, tc.unreachable)
		}
		if tc.tls && !strings.Contains(err.Error(), "pkipath") {
			t.Errorf("%q: %v; want the TLS hint", tc.lerr.Message, err)
		}
	}
}
