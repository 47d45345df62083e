package cxl

import (
	"fmt"
	"time"
)

// Report is what a segment holds, for `zflow shm inspect` and `ls`.
type Report struct {
	Path         string            `json:"path"`
	Backing      string            `json:"backing"`
	Size         int64             `json:"size_bytes"`
	Align        int64             `json:"align_bytes"`
	Generation   uint64            `json:"generation"`
	Created      time.Time         `json:"created"`
	CreatorPID   int               `json:"creator_pid"`
	ExtentSize   int64             `json:"extent_bytes"`
	Extents      int               `json:"extents"`
	FreeExtents  int               `json:"free_extents"`
	Retired      int               `json:"retired_extents"` // held for consumers of a dead producer
	ByOwner      map[string]int    `json:"extents_by_owner,omitempty"`
	Participants []ParticipantInfo `json:"participants"`
	Channels     []ChannelInfo     `json:"channels"`
}

// ChannelInfo is one channel of a Report.
type ChannelInfo struct {
	Name      string         `json:"name"`
	Consumers []ConsumerInfo `json:"consumers"`
	Published uint64         `json:"published"` // batches (and end markers) published
	Ended     bool           `json:"ended"`
	Done      bool           `json:"done"`   // every consumer acked the end
	Closed    bool           `json:"closed"` // and the producer finished
	Failed    bool           `json:"failed"`
	Producer  int            `json:"producer_slot"` // -1: none
	Capacity  int            `json:"capacity"`
}

// ConsumerInfo is one consumer place of a channel.
type ConsumerInfo struct {
	Slot      int    `json:"slot"` // -1: free
	Acked     uint64 `json:"acked"`
	Delivered uint64 `json:"delivered"`
	Takeovers uint32 `json:"takeovers"`
	Err       string `json:"error,omitempty"`
}

// Used is the bytes of extents held (by processes, channels, or retired).
func (r *Report) Used() int64 { return int64(r.Extents-r.FreeExtents) * r.ExtentSize }

// Inspect reads what the segment holds. It changes nothing.
func (s *Segment) Inspect() (*Report, error) {
	h := s.hdr
	r := &Report{
		Path: s.name, Backing: s.backing.String(), Size: h.Size, Align: h.Align,
		Generation: s.Generation(), Created: time.Unix(0, h.CreatedNano), CreatorPID: h.CreatorPID,
		ExtentSize: h.ExtentSize, Extents: h.Extents.Count, ByOwner: map[string]int{},
	}
	for i := 0; i < h.Extents.Count; i++ {
		switch o := s.u32(s.extentEntry(i) + extOwner).Load(); {
		case o == 0:
			r.FreeExtents++
		case o == retiredOwner:
			r.Retired++
			r.ByOwner["retired"]++
		case o&channelOwner != 0:
			r.ByOwner[fmt.Sprintf("channel %d", o&^channelOwner)]++
		default:
			r.ByOwner[fmt.Sprintf("slot %d", o-1)]++
		}
	}
	var err error
	if r.Participants, err = s.Participants(); err != nil {
		return nil, err
	}
	for ch := 0; ch < h.Channels.Count; ch++ {
		off := s.chanOff(ch)
		if s.u32(off+chState).Load() != 1 {
			continue
		}
		flags := s.u32(off + chFlags).Load()
		c := ChannelInfo{
			Name: s.chanName(ch), Published: s.u64(off + chPublished).Load(),
			Ended: flags&chanEnded != 0, Done: flags&chanDone != 0, Closed: flags&chanClosed != 0, Failed: flags&chanFailed != 0,
			Producer: int(s.u32(off+chProducer).Load()) - 1, Capacity: int(s.u32(off + chCap).Load()),
		}
		n := min(int(s.u32(off+chConsumers).Load()), MaxConsumers)
		for k := 0; k < n; k++ {
			co := s.consumerOff(ch, k)
			ci := ConsumerInfo{Slot: int(s.u32(co).Load()) - 1, Takeovers: s.u32(co + 4).Load()}
			if rg, err := s.ringOf(ch, k, false, RingOptions{}); err != nil {
				ci.Err = err.Error()
			} else {
				ci.Acked, ci.Delivered = rg.Acked(), rg.word(ringHead).Load()
			}
			c.Consumers = append(c.Consumers, ci)
		}
		r.Channels = append(r.Channels, c)
	}
	return r, nil
}

// GCResult says what Collect did.
type GCResult struct {
	Reclaimed []ParticipantInfo `json:"reclaimed"`
	Freed     int               `json:"freed_extents"` // extents freed (dead holders, drained retirements)
	Removed   bool              `json:"removed"`
	Why       string            `json:"why"` // why the segment was kept, or removed
}

// Collect reclaims what dead processes left (their slots, channel places
// and extents; retired extents once every channel is drained) and, with
// remove, removes the segment's file when nobody is attached and no
// channel has a batch some consumer has not acknowledged; on a device,
// which cannot be unlinked, it wipes the segment's header instead.
func (s *Segment) Collect(remove bool) (*GCResult, error) {
	free := s.freeExtents()
	rec, err := s.Reclaim()
	if err != nil {
		return nil, err
	}
	res := &GCResult{Reclaimed: rec, Freed: s.freeExtents() - free}
	ps, err := s.Participants()
	if err != nil {
		return nil, err
	}
	alive := 0
	for _, p := range ps {
		if p.Alive {
			alive++
		}
	}
	switch {
	case alive > 0:
		res.Why = fmt.Sprintf("kept: %d process(es) attached", alive)
	case s.anyUnacked():
		res.Why = "kept: a channel has batches a consumer has not acknowledged (a consumer that joins gets them)"
	case !remove:
		res.Why = "nothing attached, nothing pending: removable (--remove)"
	default:
		if err := s.discard(); err != nil {
			return res, err
		}
		res.Removed, res.Why = true, "removed: nothing attached, nothing pending"
		if s.backing == BackingDevDAX {
			res.Why = "header wiped (a device is not unlinked; the next run makes a segment anew): nothing attached, nothing pending"
		}
	}
	return res, nil
}
