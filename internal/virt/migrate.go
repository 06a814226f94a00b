package virt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"libvirt.org/go/libvirt"
)

// MigrateOptions tunes one live migration. This is the libvirt mechanism only; deciding when and
// where to migrate, journaling and verifying the guest afterwards belong to the migrate package.
type MigrateOptions struct {
	// URI is where the source QEMU sends memory, e.g. tcp://198.18.0.3 (the destination's
	// migration address); empty lets libvirt derive it from the destination's hostname.
	URI string
	// MaxDowntime bounds the final pause; 0 keeps libvirt's default (300 ms).
	MaxDowntime time.Duration
	// BandwidthMiBs caps the transfer in MiB/s; 0 is unlimited.
	BandwidthMiBs uint64
	// AutoConverge lets QEMU throttle the guest's vCPUs when memory is dirtied faster than it is sent.
	AutoConverge bool
	// PostCopyAfter, when positive, enables post-copy and switches to it if pre-copy has not
	// finished after this long (the guest then runs on the destination and pulls missing pages).
	PostCopyAfter time.Duration
	// PostCopyWhenStuck enables post-copy and switches to it as soon as pre-copy cannot converge:
	// the guest dirties memory about as fast as it is sent, or the data left stops shrinking.
	PostCopyWhenStuck bool
	// Deadline, when positive, bounds pre-copy; OnDeadline says what happens then: DeadlineAbort
	// (the default) cancels the migration and the guest stays on the source, DeadlinePostCopy
	// switches to post-copy so it finishes on the destination.
	Deadline   time.Duration
	OnDeadline string
	// TLS encrypts the memory stream between the two QEMUs (libvirt's --tls): both hypervisors
	// need QEMU's certificates (qemu.conf migrate_tls_x509_cert_dir) and the destination's must
	// name the host of URI.
	TLS bool
	// Progress, if set, is called from a separate goroutine about every ProgressInterval.
	Progress         func(Progress)
	ProgressInterval time.Duration // default 250 ms
}

// Progress is a running migration's state, read from the source.
type Progress struct {
	Elapsed       time.Duration
	DataTotal     uint64 // bytes
	DataProcessed uint64
	DataRemaining uint64
	BytesPerSec   uint64 // memory transfer rate
	DirtyPages    uint64 // pages dirtied per second
	Iteration     uint64 // pre-copy pass
	PostCopy      bool   // switched to post-copy
	Completed     bool   // the finished transfer's totals, not a reading taken during it
}

// MigrateResult is what the destination reports for a completed migration.
type MigrateResult struct {
	Wall          time.Duration // from the call to its return, as the caller saw it
	Elapsed       time.Duration // QEMU's own migration time
	Downtime      time.Duration // the guest's pause at switch-over
	DataTotal     uint64
	DataProcessed uint64
	Iterations    uint64
	PostCopy      bool
	// PostCopyWhy says what made it switch to post-copy: "after 30s", "stuck: …", "deadline".
	PostCopyWhy   string
	FirstProgress time.Duration // from the call until the source first reported bytes sent
	// FirstProgressEstimated: no progress reading saw data (a short transfer); FirstProgress is
	// then the call's wall time less QEMU's migration time.
	FirstProgressEstimated bool
}

// What MigrateOptions.OnDeadline can ask for.
const (
	DeadlineAbort    = "abort"
	DeadlinePostCopy = "postcopy"
)

// MigrateLive moves the running domain name from c to dst while it runs (pre-copy; post-copy
// when PostCopyAfter says so). A persistent domain stays defined on the destination only. If ctx
// ends first, the migration is aborted and, once libvirt confirms, the domain keeps running on
// the source.
func (c *Conn) MigrateLive(ctx context.Context, name string, dst *Conn, opts MigrateOptions) (MigrateResult, error) {
	op := fmt.Sprintf("migrate %s to %s", quote(name), dst.name)
	if dst == c || dst.uri == c.uri {
		return MigrateResult{}, c.wrap(op, errors.New("source and destination are the same hypervisor"))
	}
	var res MigrateResult
	start := time.Now()
	// The call itself ignores cancellation: on ctx's end the loop below aborts the job and still
	// waits for libvirt's answer, so the caller always learns whether the domain moved.
	err := c.withDomain(context.WithoutCancel(ctx), op, name, func(dom *libvirt.Domain) error {
		persistent, err := dom.IsPersistent()
		if err != nil {
			return err
		}
		flags := libvirt.MIGRATE_LIVE | libvirt.MIGRATE_ABORT_ON_ERROR
		if persistent {
			flags |= libvirt.MIGRATE_PERSIST_DEST | libvirt.MIGRATE_UNDEFINE_SOURCE
		}
		if opts.AutoConverge {
			flags |= libvirt.MIGRATE_AUTO_CONVERGE
		}
		if opts.TLS {
			flags |= libvirt.MIGRATE_TLS
		}
		if opts.PostCopyAfter > 0 || opts.PostCopyWhenStuck || opts.OnDeadline == DeadlinePostCopy {
			flags |= libvirt.MIGRATE_POSTCOPY // enables the switch; pre-copy runs first either way
		}
		if opts.MaxDowntime > 0 {
			if err := dom.MigrateSetMaxDowntime(uint64(opts.MaxDowntime/time.Millisecond), 0); err != nil {
				return fmt.Errorf("set maximum downtime: %w", err)
			}
		}
		params := &libvirt.DomainMigrateParameters{}
		if opts.URI != "" {
			params.URISet, params.URI = true, opts.URI
		}
		if opts.BandwidthMiBs > 0 {
			params.BandwidthSet, params.Bandwidth = true, opts.BandwidthMiBs
		}

		type outcome struct {
			dom *libvirt.Domain
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			d, err := dom.Migrate3(dst.lv, params, flags)
			done <- outcome{d, err}
		}()

		interval := opts.ProgressInterval
		if interval <= 0 {
			interval = 250 * time.Millisecond
		}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		postCopy, aborted := false, false
		conv := newConvergence()
		switchTo := func(why string) {
			if err := dom.MigrateStartPostCopy(0); err == nil {
				postCopy, res.PostCopyWhy = true, why
			}
		}
		for {
			select {
			case o := <-done:
				res.Wall = time.Since(start)
				if o.err != nil {
					return o.err
				}
				defer o.dom.Free()
				if js, err := o.dom.GetJobStats(libvirt.DOMAIN_JOB_STATS_COMPLETED); err == nil {
					res.Elapsed = time.Duration(js.TimeElapsed) * time.Millisecond
					res.Downtime = time.Duration(js.Downtime) * time.Millisecond
					res.DataTotal, res.DataProcessed, res.Iterations = js.DataTotal, js.DataProcessed, js.MemIteration
				}
				if res.FirstProgress == 0 && res.Elapsed > 0 && res.Elapsed < res.Wall {
					// too quick for a progress reading: QEMU's own migration time ends at the return
					res.FirstProgress, res.FirstProgressEstimated = res.Wall-res.Elapsed, true
				}
				res.PostCopy = postCopy
				return nil
			case <-ctx.Done():
				if !aborted {
					aborted = true
					_ = dom.AbortJob() // Migrate3 then returns with an error; keep waiting for it
				}
			case <-tick.C:
				js, err := dom.GetJobStats(0)
				if err != nil || js.Type == libvirt.DOMAIN_JOB_NONE {
					continue
				}
				p := Progress{
					Elapsed:       time.Duration(js.TimeElapsed) * time.Millisecond,
					DataTotal:     js.DataTotal,
					DataProcessed: js.DataProcessed,
					DataRemaining: js.DataRemaining,
					BytesPerSec:   js.MemBps,
					DirtyPages:    js.MemDirtyRate,
					Iteration:     js.MemIteration,
					PostCopy:      postCopy,
				}
				if res.FirstProgress == 0 && p.DataProcessed > 0 {
					res.FirstProgress = time.Since(start)
				}
				switch {
				case postCopy || aborted:
				case opts.Deadline > 0 && p.Elapsed >= opts.Deadline:
					if opts.OnDeadline == DeadlinePostCopy {
						switchTo(fmt.Sprintf("deadline: pre-copy ran %v", opts.Deadline))
					} else {
						aborted = true
						_ = dom.AbortJob()
					}
				case opts.PostCopyAfter > 0 && p.Elapsed >= opts.PostCopyAfter:
					switchTo(fmt.Sprintf("after %v", opts.PostCopyAfter))
				case opts.PostCopyWhenStuck:
					if stuck, why := conv.stuck(p, js.MemPageSize); stuck {
						switchTo("stuck: " + why)
					}
				}
				p.PostCopy = postCopy
				if opts.Progress != nil {
					opts.Progress(p)
				}
			}
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return res, c.wrap(op, fmt.Errorf("aborted: %w", ctx.Err()))
		}
		if opts.Deadline > 0 && opts.OnDeadline != DeadlinePostCopy && res.Wall >= opts.Deadline {
			return res, c.wrap(op, fmt.Errorf("aborted at the deadline: pre-copy did not finish within %v: %w", opts.Deadline, ErrDeadline))
		}
		c.streamHint(ctx, err, dst, opts.URI)
		return res, err
	}
	return res, nil
}

// ErrDeadline: a migration was cancelled because pre-copy ran past MigrateOptions.Deadline.
var ErrDeadline = errors.New("migration deadline passed")

// streamHint corrects the hint of a failed migration that reads as if libvirtd were unreachable
// (a socket error) while the source's libvirtd still answers: then the migration stream, not
// the management connection, could not reach the destination.
func (c *Conn) streamHint(ctx context.Context, err error, dst *Conn, uri string) {
	var e *Error
	if !errors.As(err, &e) || !strings.HasPrefix(e.Hint, hintUnreachable) {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if c.call(actx, "check the connection", func() error { _, err := c.lv.GetLibVersion(); return err }) != nil {
		return // libvirtd itself is gone: the hint stands
	}
	to := "the address libvirt derives from " + dst.name + "'s hostname"
	if uri != "" {
		to = uri
	}
	e.Hint = "libvirtd at " + c.uri + " answers, but the migration stream could not reach " + dst.name + " at " + to +
		": check its migration_uri and that it accepts connections on the migration ports. " + hintTestbed
}
