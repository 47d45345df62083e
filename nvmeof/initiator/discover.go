package initiator

import (
	"context"
	"fmt"

	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// discoverRetries bounds how often Discover starts over when the log's
// generation changes while it reads.
const discoverRetries = 10

// Discover connects to the discovery controller at addr (cfg.SubNQN is
// ignored: the well-known discovery NQN is used), reads the discovery log
// and disconnects. It reads as libnvme does: the header, the entries from
// offset 1024 in windows of at most 4 KiB, the header again, and starts
// over when the generation counter changed in between.
func Discover(ctx context.Context, addr string, cfg Config) ([]nvme.DiscoveryEntry, error) {
	cfg.SubNQN = nvme.DiscoveryNQN
	cfg.IOQueues = 0
	c, err := Connect(ctx, addr, cfg)
	if err != nil {
		return nil, err
	}
	ents, err := c.DiscoveryLog()
	if cerr := c.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return ents, err
}

// DiscoveryLog reads the discovery log of a discovery controller.
func (c *Controller) DiscoveryLog() ([]nvme.DiscoveryEntry, error) {
	for range discoverRetries {
		h, err := c.discoveryHeader()
		if err != nil {
			return nil, err
		}
		if h.NumRec > 1<<16 {
			return nil, fmt.Errorf("initiator: discovery log of %s says %d records", c.addr, h.NumRec)
		}
		page := make([]byte, h.NumRec*nvme.DiscoveryEntrySize)
		for off := 0; off < len(page); off += 4096 {
			win := page[off:min(off+4096, len(page))]
			cmd := nvme.NewGetLogPage(0, nvme.LogDiscovery, uint64(nvme.DiscoveryHeaderSize+off), uint32(len(win)), true)
			if _, err := c.Admin().Submit(cmd, win, false); err != nil {
				return nil, err
			}
		}
		again, err := c.discoveryHeader()
		if err != nil {
			return nil, err
		}
		if again.GenCtr != h.GenCtr || again.NumRec != h.NumRec {
			continue
		}
		ents := make([]nvme.DiscoveryEntry, h.NumRec)
		for i := range ents {
			if err := ents[i].Unmarshal(page[i*nvme.DiscoveryEntrySize:]); err != nil {
				return nil, err
			}
		}
		return ents, nil
	}
	return nil, fmt.Errorf("initiator: discovery log of %s kept changing while read %d times", c.addr, discoverRetries)
}

func (c *Controller) discoveryHeader() (nvme.DiscoveryHeader, error) {
	var h nvme.DiscoveryHeader
	buf := make([]byte, 20)
	if _, err := c.Admin().Submit(nvme.NewGetLogPage(0, nvme.LogDiscovery, 0, uint32(len(buf)), true), buf, false); err != nil {
		return h, err
	}
	if err := h.Unmarshal(buf); err != nil {
		return h, fmt.Errorf("initiator: %s: %w", c.addr, err)
	}
	return h, nil
}
