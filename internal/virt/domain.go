package virt

import (
	"context"
	"errors"
	"sort"

	"libvirt.org/go/libvirt"
)

// State is a domain's run state as libvirt reports it.
type State int

// The states of a domain. A domain is active (has a QEMU process) in every state but StateShutOff
// and StateUnknown.
const (
	StateUnknown      State = iota // libvirt's "no state"
	StateRunning                   // executing
	StateBlocked                   // running, waiting on a resource
	StatePaused                    // suspended by an operator or by a migration's last phase
	StateShuttingDown              // a guest shutdown is in progress
	StateShutOff                   // defined but not running
	StateCrashed
	StateSuspended // suspended by guest power management
)

var stateNames = [...]string{
	StateUnknown:      "unknown",
	StateRunning:      "running",
	StateBlocked:      "blocked",
	StatePaused:       "paused",
	StateShuttingDown: "shutting down",
	StateShutOff:      "shut off",
	StateCrashed:      "crashed",
	StateSuspended:    "suspended",
}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "unknown"
	}
	return stateNames[s]
}

// stateOf converts libvirt's state.
func stateOf(s libvirt.DomainState) State {
	switch s {
	case libvirt.DOMAIN_RUNNING:
		return StateRunning
	case libvirt.DOMAIN_BLOCKED:
		return StateBlocked
	case libvirt.DOMAIN_PAUSED:
		return StatePaused
	case libvirt.DOMAIN_SHUTDOWN:
		return StateShuttingDown
	case libvirt.DOMAIN_SHUTOFF:
		return StateShutOff
	case libvirt.DOMAIN_CRASHED:
		return StateCrashed
	case libvirt.DOMAIN_PMSUSPENDED:
		return StateSuspended
	}
	return StateUnknown
}

// Domain is a snapshot of one domain on one hypervisor.
type Domain struct {
	Name       string
	UUID       string
	State      State
	Active     bool // a QEMU process exists (running, paused…); false when shut off
	Persistent bool // defined (survives a stop); false for a transient domain from Create
}

// Running reports whether the guest is executing (running or blocked), not paused or stopped.
func (d Domain) Running() bool { return d.State == StateRunning || d.State == StateBlocked }

// snapshot reads a Domain from a libvirt handle; it does not free the handle.
func snapshot(dom *libvirt.Domain) (Domain, error) {
	var d Domain
	var err error
	if d.Name, err = dom.GetName(); err != nil {
		return Domain{}, err
	}
	if d.UUID, err = dom.GetUUIDString(); err != nil {
		return Domain{}, err
	}
	st, _, err := dom.GetState()
	if err != nil {
		return Domain{}, err
	}
	d.State = stateOf(st)
	if d.Active, err = dom.IsActive(); err != nil {
		return Domain{}, err
	}
	if d.Persistent, err = dom.IsPersistent(); err != nil {
		return Domain{}, err
	}
	return d, nil
}

// withDomain runs fn on the domain called name, freeing the handle afterwards.
func (c *Conn) withDomain(ctx context.Context, op, name string, fn func(*libvirt.Domain) error) error {
	return c.call(ctx, op, func() error {
		dom, err := c.lv.LookupDomainByName(name)
		if err != nil {
			return err
		}
		defer dom.Free()
		return fn(dom)
	})
}

// Define makes a persistent domain from xml (see DomainSpec.XML) without starting it. Defining
// an existing name again replaces its definition.
func (c *Conn) Define(ctx context.Context, xml string) (Domain, error) {
	return c.fromXML(ctx, "define domain", xml, func() (*libvirt.Domain, error) {
		return c.lv.DomainDefineXML(xml)
	})
}

// Create starts a transient domain from xml: it exists until it stops, and is never defined.
func (c *Conn) Create(ctx context.Context, xml string) (Domain, error) {
	return c.fromXML(ctx, "create domain", xml, func() (*libvirt.Domain, error) {
		return c.lv.DomainCreateXML(xml, libvirt.DOMAIN_NONE)
	})
}

func (c *Conn) fromXML(ctx context.Context, op, xml string, fn func() (*libvirt.Domain, error)) (Domain, error) {
	if name := xmlName(xml); name != "" {
		op += " " + quote(name)
	}
	var d Domain
	err := c.call(ctx, op, func() error {
		dom, err := fn()
		if err != nil {
			return err
		}
		defer dom.Free()
		d, err = snapshot(dom)
		return err
	})
	if err != nil {
		return Domain{}, err
	}
	return d, nil
}

// Start boots a defined domain. It fails with ErrWrongState if it is already active
// (with QEMU; other drivers may report it differently).
func (c *Conn) Start(ctx context.Context, name string) error {
	return c.withDomain(ctx, "start domain "+quote(name), name, func(dom *libvirt.Domain) error {
		return dom.Create()
	})
}

// Destroy stops a domain at once, like pulling the power cord. A transient domain is gone
// afterwards; a persistent one is shut off. It fails with ErrWrongState if it is not active.
func (c *Conn) Destroy(ctx context.Context, name string) error {
	return c.withDomain(ctx, "destroy domain "+quote(name), name, func(dom *libvirt.Domain) error {
		return dom.Destroy()
	})
}

// Undefine removes a domain's definition, with any managed-save image and snapshot metadata. A
// running domain keeps running and becomes transient.
func (c *Conn) Undefine(ctx context.Context, name string) error {
	return c.withDomain(ctx, "undefine domain "+quote(name), name, func(dom *libvirt.Domain) error {
		return dom.UndefineFlags(libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
	})
}

// Lookup returns the domain called name, or an error matching ErrNoDomain.
func (c *Conn) Lookup(ctx context.Context, name string) (Domain, error) {
	var d Domain
	err := c.withDomain(ctx, "look up domain "+quote(name), name, func(dom *libvirt.Domain) error {
		var err error
		d, err = snapshot(dom)
		return err
	})
	if err != nil {
		return Domain{}, err
	}
	return d, nil
}

// List returns every domain on the hypervisor, active or not, sorted by name.
func (c *Conn) List(ctx context.Context) ([]Domain, error) {
	var out []Domain
	err := c.call(ctx, "list domains", func() error {
		doms, err := c.lv.ListAllDomains(0)
		if err != nil {
			return err
		}
		defer func() {
			for i := range doms {
				_ = doms[i].Free()
			}
		}()
		list := make([]Domain, 0, len(doms))
		for i := range doms {
			d, err := snapshot(&doms[i])
			if errors.Is(err, libvirt.ERR_NO_DOMAIN) {
				continue // a transient domain that stopped while we were listing
			}
			if err != nil {
				return err
			}
			list = append(list, d)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
		out = list
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
