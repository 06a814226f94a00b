package cli

import (
	"context"
	"sync"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/server"
	"github.com/drover-hpc/drover/internal/virt"
)

// libvirtProber asks each configured hypervisor's libvirt for its CPUs, memory and active domains.
type libvirtProber struct{ hvs []config.Hypervisor }

func (p libvirtProber) Probe(ctx context.Context) []server.Probe {
	out := make([]server.Probe, len(p.hvs))
	var wg sync.WaitGroup
	for i, hv := range p.hvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].Name = hv.Name
			c, err := virt.Connect(ctx, hv.Name, hv.URI)
			if err != nil {
				out[i].Err = err
				return
			}
			defer c.Close()
			info, err := c.HostInfo(ctx)
			if err != nil {
				out[i].Err = err
				return
			}
			doms, err := c.List(ctx)
			if err != nil {
				out[i].Err = err
				return
			}
			out[i].CPUs, out[i].MemoryMiB = info.CPUs, int64(info.MemoryBytes>>20)
			out[i].Active = []string{}
			for _, d := range doms {
				if d.Active {
					out[i].Active = append(out[i].Active, d.Name)
				}
			}
		}()
	}
	wg.Wait()
	return out
}
