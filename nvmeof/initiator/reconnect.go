package initiator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// Reconnecting, and what happens to the commands in flight.
//
// When any queue's connection fails (a read or write error, a TermReq
// either way, a PDU that breaks the protocol), the controller — with
// Config.ReconnectTimeout set — ends the whole association, as the Linux
// host does: every queue is closed, then a new association is made (admin
// Connect with a dynamic controller id, CC.EN, Identify, the same number
// of I/O queues), first at once, then after ReconnectDelay, doubling up to
// maxReconnectDelay, until ReconnectTimeout has passed since the failure.
// The new association must be the same subsystem (SUBNQN) with the same
// serial number, and grant as many I/O queues; otherwise the attempt
// fails. If none succeeds the controller is lost: every command from then
// on fails with the error that says so, and only Close is left.
//
// A command whose connection failed before its completion arrived may or
// may not have run on the controller. What the controller retries:
//
//   - Read, Write, Flush and Dataset Management submitted through the
//     Controller (Read, Write, ReadAt, WriteAt, Flush, Deallocate) are sent
//     again on the new association, up to maxRetries times. They are
//     idempotent: running one twice leaves the namespace as running it once
//     (the data of a Write and the ranges of a deallocate are still in the
//     caller's buffer, which Submit holds until it returns). Overlapping
//     writes in flight together have no order in NVMe to begin with, so a
//     retried write landing after another in-flight write to the same
//     blocks is an outcome the host could have had anyway.
//   - Nothing that got a completion is retried: a status error (a
//     transient transport error from a bad data digest included) is
//     returned as the controller sent it.
//   - Admin commands and commands submitted on a Queue directly are never
//     retried: they return the *QueueError (errors.Is ErrQueueFailed); a
//     later call runs on the new association.
//
// Durability across a reconnection is what the target promises: on a
// file namespace of ours, a write acknowledged before a Flush that
// succeeded survives the target's restart.

const (
	defaultReconnectDelay = 100 * time.Millisecond
	maxReconnectDelay     = 5 * time.Second
	// maxRetries bounds how often one command is sent again.
	maxRetries = 3
)

// current is the association in use (a failed one while a reconnection is
// under way).
func (c *Controller) current() *assoc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.a
}

// Association is the controller id and the Identify Controller data of the
// association in use. Controller.CntlID and Controller.Identify are those
// of the first one; after a reconnection the target may have given another
// controller id (dynamic controllers always do), and what Identify says
// may have moved on (a firmware revision): this is what is true now.
func (c *Controller) Association() (cntlID uint16, id nvme.IdentifyController) {
	a := c.current()
	return a.cntlID, a.id
}

// reconnecting reports that failures are followed by reconnecting: it is
// on and has not given up.
func (c *Controller) reconnecting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.ReconnectTimeout > 0 && c.lost == nil && !c.closed
}

// Reconnects is how many times the controller has reconnected.
func (c *Controller) Reconnects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconnects
}

// LastFailure is the error that made the last reconnection necessary (a
// *QueueError), nil when there was none.
func (c *Controller) LastFailure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastFail
}

// queueFailed runs when a queue of a's connection fails: it starts
// reconnecting when a is still the current association.
func (c *Controller) queueFailed(a *assoc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.a == a {
		c.startReconnect(a)
	}
}

// startReconnect starts the reconnection of a (c.mu held), unless one is
// under way, reconnecting is off or over, or the controller is closing.
func (c *Controller) startReconnect(a *assoc) {
	if c.recovering != nil || c.cfg.ReconnectTimeout <= 0 || c.lost != nil || c.closed {
		return
	}
	c.recovering = make(chan struct{})
	c.bg.Add(1)
	go c.reconnect(a)
}

// submitIO submits an I/O command on queue qi of the current association
// and, when its connection fails before it completes and reconnecting is
// on, waits for the reconnection and sends it again (see above).
func (c *Controller) submitIO(qi int, cmd nvme.Command, buf []byte, write bool) (nvme.Completion, error) {
	for attempt := 0; ; attempt++ {
		a := c.current()
		if qi < 0 || qi >= len(a.io) {
			return nvme.Completion{}, fmt.Errorf("initiator: I/O queue %d of %d", qi, len(a.io))
		}
		cqe, err := a.io[qi].Submit(cmd, buf, write)
		if !errors.Is(err, ErrQueueFailed) || attempt == maxRetries {
			return cqe, err
		}
		if werr := c.awaitReconnect(a); werr != nil {
			if werr == errNoReconnect {
				return cqe, err
			}
			return cqe, werr
		}
	}
}

var errNoReconnect = errors.New("initiator: no reconnecting")

// awaitReconnect waits until a has been replaced: at once when it already
// is, else for the reconnection under way (started here if the failure
// has not started one yet). It returns errNoReconnect when reconnecting is
// off, or the error that ended it.
func (c *Controller) awaitReconnect(a *assoc) error {
	c.mu.Lock()
	switch {
	case c.lost != nil:
		c.mu.Unlock()
		return c.lost
	case c.a != a:
		c.mu.Unlock()
		return nil
	case c.cfg.ReconnectTimeout <= 0 || c.closed:
		c.mu.Unlock()
		return errNoReconnect
	}
	c.startReconnect(a)
	ch := c.recovering
	c.mu.Unlock()
	select {
	case <-ch:
	case <-c.stop:
		return errClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// reconnect replaces the failed association old: it closes it (what was
// in flight on it fails with a *QueueError, and submitIO retries it), then
// makes new ones with back-off until one works or ReconnectTimeout is
// over. Close stops it.
func (c *Controller) reconnect(old *assoc) {
	defer c.bg.Done()
	start := time.Now()
	fail := old.admin.Err()
	for _, q := range old.io {
		if err := q.Err(); err != nil {
			fail = err
		}
	}
	old.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan struct{})
	go func() { // Close cancels the attempt under way
		defer close(stopped)
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer func() { cancel(); <-stopped }()

	delay := time.Duration(0)
	attempts := 0
	var last error
	for {
		if err := sleep(ctx, delay); err != nil {
			last = errors.Join(last, err)
			break
		}
		attempts++
		actx, acancel := context.WithTimeout(ctx, max(c.cfg.ReconnectTimeout-time.Since(start), time.Second))
		a, err := c.associate(actx)
		acancel()
		if err == nil {
			if err = c.same(a); err != nil {
				a.close()
			}
		}
		if err == nil {
			c.mu.Lock()
			c.a, c.lastFail = a, fail
			c.reconnects++
			close(c.recovering)
			c.recovering = nil
			c.mu.Unlock()
			return
		}
		last = err
		delay = min(max(2*delay, c.cfg.ReconnectDelay), maxReconnectDelay)
		if time.Since(start)+delay > c.cfg.ReconnectTimeout {
			break
		}
	}
	c.mu.Lock()
	c.lastFail = fail
	c.lost = fmt.Errorf("initiator: controller at %s lost (%v): %d reconnection attempts in %s failed, the last with: %w",
		c.addr, fail, attempts, time.Since(start).Round(time.Millisecond), last)
	close(c.recovering)
	c.recovering = nil
	c.mu.Unlock()
}

// same checks that a new association reached the controller the first
// one did.
func (c *Controller) same(a *assoc) error {
	switch {
	case a.id.SubNQN != c.Identify.SubNQN || a.id.SN != c.Identify.SN:
		return fmt.Errorf("initiator: %s now answers as subsystem %q serial %q, was %q serial %q", c.addr, a.id.SubNQN, a.id.SN, c.Identify.SubNQN, c.Identify.SN)
	case len(a.io) != len(c.a.io):
		return fmt.Errorf("initiator: %s granted %d I/O queues on reconnecting, %d before", c.addr, len(a.io), len(c.a.io))
	}
	return nil
}
