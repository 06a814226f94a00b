package virt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"libvirt.org/go/libvirt"
)

const (
	// keepAliveInterval and keepAliveCount: a hypervisor that stops answering is declared dead after
	// about interval*(count+1) seconds, and every call on its Conn then fails with ErrUnreachable.
	keepAliveInterval = 5
	keepAliveCount    = 3
	// closeTimeout bounds Close, which sends one last message to libvirtd.
	closeTimeout = 5 * time.Second
	// versionTimeout bounds Version, which takes no context.
	versionTimeout = 10 * time.Second
)

// Conn is a connection to one hypervisor's libvirtd. It is safe for concurrent use.
type Conn struct {
	name string
	uri  string
	lv   *libvirt.Connect

	closeOnce sync.Once
	closeErr  error
}

// eventLoop runs libvirt's default event loop, which keepalive needs, once per process.
var eventLoop struct {
	once sync.Once
	err  error
}

func startEventLoop() error {
	eventLoop.once.Do(func() {
		if err := libvirt.EventRegisterDefaultImpl(); err != nil {
			eventLoop.err = fmt.Errorf("register libvirt event loop: %w", err)
			return
		}
		go func() {
			for {
				if err := libvirt.EventRunDefaultImpl(); err != nil {
					time.Sleep(time.Second) // never spin; the next iteration retries
				}
			}
		}()
	})
	return eventLoop.err
}

// Connect opens a connection to the hypervisor called name at uri (qemu+tcp://198.18.0.2/system).
// It returns when ctx expires even if libvirt is still trying: the late connection, if any, is
// closed in the background.
func Connect(ctx context.Context, name, uri string) (*Conn, error) {
	c := &Conn{name: name, uri: uri}
	op := "connect to " + uri
	if err := startEventLoop(); err != nil {
		return nil, c.wrap(op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.wrap(op, err)
	}
	type result struct {
		lv  *libvirt.Connect
		err error
	}
	done := make(chan result, 1)
	go func() {
		lv, err := libvirt.NewConnect(uri)
		if err == nil {
			// keepalive turns a silent hypervisor into errors instead of calls that hang; drivers
			// that are not remote (test:///default) do not support it, which is fine
			var lerr libvirt.Error
			if kerr := lv.SetKeepAlive(keepAliveInterval, keepAliveCount); kerr != nil &&
				!(errors.As(kerr, &lerr) && lerr.Code == libvirt.ERR_NO_SUPPORT) {
				_, _ = lv.Close()
				lv, err = nil, kerr
			}
		}
		done <- result{lv, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, c.wrapConnect(op, r.err)
		}
		c.lv = r.lv
		return c, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.lv != nil {
				_, _ = r.lv.Close()
			}
		}()
		return nil, c.wrap(op, ctx.Err())
	}
}

// wrapConnect is wrap for a failed connect: whatever libvirt says, the advice is the same.
func (c *Conn) wrapConnect(op string, err error) error {
	e, _ := c.wrap(op, err).(*Error)
	if e.Hint == "" {
		e.Hint = "is libvirtd running at " + c.uri + " and listening? " + hintTestbed
	}
	return e
}

// Name is the hypervisor's name in drover's configuration (hv1), not its hostname.
func (c *Conn) Name() string { return c.name }

// URI is the libvirt URI the Conn was opened with.
func (c *Conn) URI() string { return c.uri }

// Close closes the connection. It waits at most a few seconds for libvirtd; later calls return
// the first call's result.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		c.closeErr = c.call(ctx, "close connection", func() error {
			_, err := c.lv.Close()
			return err
		})
	})
	return c.closeErr
}

// call runs fn, which talks to libvirt, and returns its error wrapped as an *Error for op, or the
// context's error as soon as ctx is done, leaving fn to finish on its own. fn must keep its results
// to itself until it returns, and free every libvirt handle it gets, whether or not the caller is
// still waiting.
func (c *Conn) call(ctx context.Context, op string, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return c.wrap(op, err)
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return c.wrap(op, err)
	case <-ctx.Done():
		return c.wrap(op, ctx.Err())
	}
}

// Version describes the hypervisor's software, e.g. "libvirt 9.0.0, QEMU 7.2.0". It gives up
// after 10 s.
func (c *Conn) Version() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), versionTimeout)
	defer cancel()
	var lib, hv uint32
	var driver string
	err := c.call(ctx, "read versions", func() error {
		var err error
		if lib, err = c.lv.GetLibVersion(); err != nil {
			return err
		}
		if driver, err = c.lv.GetType(); err != nil {
			return err
		}
		hv, err = c.lv.GetVersion()
		return err
	})
	if err != nil {
		return "", err
	}
	return "libvirt " + versionString(lib) + ", " + driver + " " + versionString(hv), nil
}

// versionString renders libvirt's encoded versions: major*1,000,000 + minor*1,000 + release.
func versionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
}

// Hostname is the hypervisor's own host name, as libvirtd sees it.
func (c *Conn) Hostname(ctx context.Context) (string, error) {
	var name string
	err := c.call(ctx, "read hostname", func() error {
		var err error
		name, err = c.lv.GetHostname()
		return err
	})
	if err != nil {
		return "", err // name may still be written by an abandoned call
	}
	return name, nil
}

// HostInfo is what a hypervisor has to offer, in base units.
type HostInfo struct {
	Model       string // CPU architecture, e.g. x86_64
	CPUs        int    // logical CPUs
	MHz         int
	MemoryBytes uint64 // physical memory
	FreeBytes   uint64 // memory not in use right now
}

// HostInfo reads the hypervisor's CPU count and memory.
func (c *Conn) HostInfo(ctx context.Context) (HostInfo, error) {
	var info HostInfo
	err := c.call(ctx, "read host info", func() error {
		ni, err := c.lv.GetNodeInfo()
		if err != nil {
			return err
		}
		free, err := c.lv.GetFreeMemory()
		if err != nil {
			return err
		}
		info = HostInfo{
			Model:       ni.Model,
			CPUs:        int(ni.Cpus),
			MHz:         int(ni.MHz),
			MemoryBytes: ni.Memory * 1024, // KiB
			FreeBytes:   free,
		}
		return nil
	})
	if err != nil {
		return HostInfo{}, err
	}
	return info, nil
}
