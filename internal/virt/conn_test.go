package virt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testURI is libvirt's built-in test driver: an in-process fake hypervisor with one running
// domain called "test". State is shared by every connection in the process, so tests use unique
// domain names.
const testURI = "test:///default"

var seq atomic.Int64

// uniqueName returns a domain name no other test in this process uses.
func uniqueName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

// testDomainXML is a minimal domain the test driver accepts (it only knows type 'test').
func testDomainXML(name string, memMiB, vcpus int) string {
	return fmt.Sprintf(`<domain type='test'><name>%s</name><memory unit='MiB'>%d</memory>
<vcpu>%d</vcpu><os><type>hvm</type></os></domain>`, name, memMiB, vcpus)
}

func testConn(t *testing.T) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, "fake", testURI)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func TestConnFacts(t *testing.T) {
	c := testConn(t)
	ctx := context.Background()
	if c.Name() != "fake" || c.URI() != testURI {
		t.Errorf("Name, URI = %q, %q", c.Name(), c.URI())
	}
	v, err := c.Version()
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	// "libvirt 9.0.0, TEST 0.0.2": the library version, then the driver's name and version
	if !strings.HasPrefix(v, "libvirt ") || !strings.Contains(v, ", TEST ") {
		t.Errorf("Version = %q, want libvirt X.Y.Z, TEST X.Y.Z", v)
	}
	if h, err := c.Hostname(ctx); err != nil || h == "" {
		t.Errorf("Hostname = %q, %v", h, err)
	}
	info, err := c.HostInfo(ctx)
	if err != nil {
		t.Fatalf("HostInfo: %v", err)
	}
	// the test driver pretends to be a 16-CPU host with 3 GiB (3145728 KiB)
	if info.CPUs != 16 || info.MemoryBytes != 3145728*1024 {
		t.Errorf("HostInfo = %+v, want 16 CPUs and 3 GiB", info)
	}
}

func TestVersionString(t *testing.T) {
	tests := []struct {
		in   uint32
		want string
	}{
		{9000000, "9.0.0"},   // libvirt 9.0.0
		{7002000, "7.2.0"},   // QEMU 7.2.0
		{10005001, "10.5.1"}, // major 10, minor 5, release 1
		{2, "0.0.2"},
	}
	for _, tt := range tests {
		if got := versionString(tt.in); got != tt.want {
			t.Errorf("versionString(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLifecyclePersistent(t *testing.T) {
	c := testConn(t)
	ctx := context.Background()
	name := uniqueName("persist")

	d, err := c.Define(ctx, testDomainXML(name, 128, 2))
	if err != nil {
		t.Fatalf("Define: %v", err)
	}
	t.Cleanup(func() { _ = c.Destroy(ctx, name); _ = c.Undefine(ctx, name) })
	if d.Name != name || d.UUID == "" || d.State != StateShutOff || d.Active || !d.Persistent {
		t.Errorf("after Define: %+v, want shut off, inactive, persistent", d)
	}

	if err := c.Start(ctx, name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	d, err = c.Lookup(ctx, name)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if !d.Running() || !d.Active || d.State.String() != "running" {
		t.Errorf("after Start: %+v, want running and active", d)
	}

	stats, err := c.DomainStats(ctx, name)
	if err != nil {
		t.Fatalf("DomainStats: %v", err)
	}
	// 128 MiB = 131072 KiB = 134217728 bytes; 2 vCPUs as defined
	want := DomainStats{Name: name, State: StateRunning, VCPUs: 2, MemoryBytes: 128 << 20, MaxMemoryBytes: 128 << 20}
	got := stats[0]
	got.CPUTime = 0 // the test driver makes CPU time up from the wall clock
	if len(stats) != 1 || got != want {
		t.Errorf("DomainStats = %+v, want [%+v]", stats, want)
	}

	if err := c.Destroy(ctx, name); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if d, err = c.Lookup(ctx, name); err != nil || d.State != StateShutOff || d.Active {
		t.Errorf("after Destroy: %+v, %v; want a shut-off persistent domain", d, err)
	}
	if err := c.Destroy(ctx, name); !errors.Is(err, ErrWrongState) {
		t.Errorf("Destroy of a shut-off domain = %v, want ErrWrongState", err)
	}
	if err := c.Undefine(ctx, name); err != nil {
		t.Fatalf("Undefine: %v", err)
	}
	_, err = c.Lookup(ctx, name)
	if !errors.Is(err, ErrNoDomain) {
		t.Fatalf("Lookup after Undefine = %v, want ErrNoDomain", err)
	}
	// the message names the hypervisor, the operation and the domain
	if msg := err.Error(); !strings.HasPrefix(msg, `fake: look up domain "`+name+`": `) {
		t.Errorf("error message = %q", msg)
	}
	var verr *Error
	if !errors.As(err, &verr) || verr.Hypervisor != "fake" {
		t.Errorf("errors.As(*Error) = %+v", verr)
	}
}

func TestLifecycleTransient(t *testing.T) {
	c := testConn(t)
	ctx := context.Background()
	name := uniqueName("transient")

	d, err := c.Create(ctx, testDomainXML(name, 64, 1))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = c.Destroy(ctx, name) })
	if !d.Running() || d.Persistent {
		t.Errorf("after Create: %+v, want running and transient", d)
	}
	if _, err := c.Create(ctx, testDomainXML(name, 64, 1)); !errors.Is(err, ErrDomainExists) {
		t.Errorf("second Create = %v, want ErrDomainExists", err)
	}

	list, err := c.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !containsDomain(list, name) || !containsDomain(list, "test") {
		t.Errorf("List = %+v, want %s and the driver's own domain 'test'", list, name)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].Name >= list[i].Name {
			t.Errorf("List not sorted by name: %q before %q", list[i-1].Name, list[i].Name)
		}
	}
	all, err := c.DomainStats(ctx)
	if err != nil || len(all) != len(list) {
		t.Errorf("DomainStats() = %d records, %v; want one per listed domain (%d)", len(all), err, len(list))
	}

	// destroying a transient domain removes it
	if err := c.Destroy(ctx, name); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := c.Lookup(ctx, name); !errors.Is(err, ErrNoDomain) {
		t.Errorf("Lookup after Destroy = %v, want ErrNoDomain", err)
	}
	if _, err := c.DomainStats(ctx, name); !errors.Is(err, ErrNoDomain) {
		t.Errorf("DomainStats of a missing domain = %v, want ErrNoDomain", err)
	}
}

func TestDefineRejectsBadXML(t *testing.T) {
	c := testConn(t)
	_, err := c.Define(context.Background(), "<domain type='test'><name>broken</name>")
	if err == nil {
		t.Fatal("Define accepted truncated XML")
	}
	if !strings.Contains(err.Error(), "DomainSpec.XML") {
		t.Errorf("error %q lacks the hint", err)
	}
}

func containsDomain(list []Domain, name string) bool {
	for _, d := range list {
		if d.Name == name {
			return true
		}
	}
	return false
}

func TestConnectRefused(t *testing.T) {
	// a loopback port nobody listens on: reserve one, then close it
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	uri := "qemu+tcp://" + addr + "/system"

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Connect(ctx, "hvx", uri)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Connect = %v, want ErrUnreachable", err)
	}
	msg := err.Error()
	for _, want := range []string{"hvx: connect to " + uri + ": ", "is libvirtd running", "scripts/testbed status"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func TestConnectHonoursDeadline(t *testing.T) {
	// a server that accepts and then says nothing: libvirt's handshake blocks in C
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-accepted
		for _, c := range conns {
			c.Close() // lets the abandoned C call fail and its goroutine end
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Connect(ctx, "hvslow", "qemu+tcp://"+l.Addr().String()+"/system")
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect = %v, want context.DeadlineExceeded", err)
	}
	// 300 ms deadline; allow generous scheduling slack on a loaded machine, but not libvirt's own
	// connect timeouts, which are many seconds
	if took > 2*time.Second {
		t.Errorf("Connect returned after %v, want about 300ms", took)
	}
	if !strings.Contains(err.Error(), "did not answer in time") {
		t.Errorf("error %q lacks the timeout hint", err)
	}
}

func TestCallsAfterCancel(t *testing.T) {
	c := testConn(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.List(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("List on a cancelled context = %v, want context.Canceled", err)
	}
}
