package virt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/internal/virt"
)

// pkiCA is a certificate authority made for a test, or the testbed's, read from disk.
type pkiCA struct {
	cert *x509.Certificate
	key  any
	pem  []byte
}

func readPEM(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	return blk.Bytes
}

// testbedCA reads the CA scripts/testbed made for libvirt's TLS listeners.
func testbedCA(t *testing.T, dir string) pkiCA {
	t.Helper()
	cert, err := x509.ParseCertificate(readPEM(t, filepath.Join(dir, "cacert.pem")))
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(readPEM(t, filepath.Join(dir, "cakey.pem")))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cacert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return pkiCA{cert: cert, key: key, pem: b}
}

func pemOf(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCA makes a self-signed CA that no testbed hypervisor trusts.
func newCA(t *testing.T) pkiCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"elsewhere"}, CommonName: "another CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return pkiCA{cert: cert, key: key, pem: pemOf("CERTIFICATE", der)}
}

// clientDir writes a libvirt pkipath directory: a client certificate with the given subject
// signed by signer, and the certificates of the CAs it trusts as cacert.pem.
func clientDir(t *testing.T, signer pkiCA, subject pkix.Name, trust ...pkiCA) string {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer.cert, key.Public(), signer.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var cas []byte
	for _, ca := range trust {
		cas = append(cas, ca.pem...)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{"cacert.pem": cas, "clientcert.pem": pemOf("CERTIFICATE", der),
		"clientkey.pem": pemOf("PRIVATE KEY", kder)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// withPKI is uri with its pkipath parameter set to dir.
func withPKI(t *testing.T, uri, dir string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pkipath", dir)
	u.RawQuery = q.Encode()
	return u.String()
}

// The testbed's hypervisors speak TLS to drover and check both sides: drover's client certificate
// gets in; a client certificate from another CA, one from the right CA for another subject
// (tls_allowed_dn_list), or a hypervisor whose CA the client does not trust are refused, as TLS
// problems (ErrTLS, a hint about certificates), not as an unreachable libvirtd.
func TestTestbedTLS(t *testing.T) {
	cfg := testenv.Config(t)
	hv := cfg.Hypervisors[1]
	u, err := url.Parse(hv.URI)
	if err != nil || u.Scheme != "qemu+tls" || u.Query().Get("pkipath") == "" {
		t.Fatalf("testbed's %s URI %q: want qemu+tls with a pkipath", hv.Name, hv.URI)
	}
	// drover's own certificate: the configured URI
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := virt.Connect(ctx, hv.Name, hv.URI)
	if err != nil {
		t.Fatalf("drover's certificate: %v", err)
	}
	if h, err := c.Hostname(ctx); err != nil || h != hv.Name {
		t.Errorf("over TLS: Hostname = %q, %v; want %q", h, err, hv.Name)
	}
	_ = c.Close()

	ca := testbedCA(t, filepath.Join(cfg.Testbed.Dir, "libvirt", "pki", "ca"))
	other := newCA(t)
	drover := pkix.Name{Organization: []string{"drover testbed"}, CommonName: "drover"}
	for _, tc := range []struct {
		name string
		dir  string
	}{
		// libvirt checks its own certificate against its CA file first: both CAs are trusted here
		{"a client certificate the hypervisor does not trust", clientDir(t, other, drover, ca, other)},
		{"the right CA's certificate for someone else", clientDir(t, ca, pkix.Name{Organization: []string{"drover testbed"}, CommonName: "intruder"}, ca)},
		{"a hypervisor certificate drover does not trust", clientDir(t, other, drover, other)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := virt.Connect(ctx, hv.Name, withPKI(t, hv.URI, tc.dir))
			if err == nil {
				_ = c.Close()
				t.Fatal("connected")
			}
			var ve *virt.Error
			if !errors.Is(err, virt.ErrTLS) || errors.Is(err, virt.ErrUnreachable) || !errors.As(err, &ve) ||
				!strings.Contains(ve.Hint, "certificate") {
				t.Errorf("error %v; want ErrTLS (not ErrUnreachable) with a hint about certificates", err)
			}
			t.Logf("%v", err)
		})
	}
	// a pkipath without the files is named as such
	_, err = virt.Connect(ctx, hv.Name, withPKI(t, hv.URI, t.TempDir()))
	if !errors.Is(err, virt.ErrTLS) || !strings.Contains(err.Error(), "cacert.pem") {
		t.Errorf("empty pkipath: %v; want ErrTLS naming cacert.pem", err)
	}
}
