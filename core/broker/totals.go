package broker

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// Add returns the sum of two rows of the same container grant: Open and
// every counter added, Container and Grant s's.
func (s SessionStats) Add(o SessionStats) SessionStats {
	s.Open += o.Open
	s.Received += o.Received
	s.Delivered += o.Delivered
	s.Dropped += o.Dropped
	s.Sent += o.Sent
	s.Refused += o.Refused
	s.RateLimited += o.RateLimited
	return s
}

// Tally sums session rows by board device, container and grant: one row
// per container grant, however many sessions it had. Make it with
// make(Tally) or Tally{}; it is not safe for concurrent use.
type Tally map[tallyKey]SessionStats

type tallyKey struct{ device, container, grant string }

// Add adds st to its container grant's row on device.
func (t Tally) Add(device string, st SessionStats) {
	k := tallyKey{device, st.Container, st.Grant}
	t[k] = t[k].Add(st)
}

// Rows returns the rows by device, sorted by container, then grant.
func (t Tally) Rows() map[string][]SessionStats {
	out := map[string][]SessionStats{}
	for k, st := range t {
		st.Container, st.Grant = k.container, k.grant
		out[k.device] = append(out[k.device], st)
	}
	for _, rows := range out {
		slices.SortFunc(rows, func(a, b SessionStats) int {
			return cmp.Or(strings.Compare(a.Container, b.Container), strings.Compare(a.Grant, b.Grant))
		})
	}
	return out
}

// sessionEnded adds the final counters of a session that closed on device
// to its container grant's total.
func (b *Broker) sessionEnded(device string, st SessionStats) {
	st.Open = 0
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ended.Add(device, st)
}

// Totals returns, by board device, one row for every container grant that
// has held a session there since the broker started, sorted by container
// and grant: its counters summed over all its sessions, open and closed,
// and how many are open now. So a refusal, a drop or a send stays counted
// after the session that made it closes, and a container that restarted
// keeps adding to the same row.
func (b *Broker) Totals() map[string][]SessionStats {
	b.mu.Lock()
	sum := Tally{}
	maps.Copy(sum, b.ended)
	devs := slices.Collect(maps.Values(b.devices))
	b.mu.Unlock()
	// A session leaves its device before its counters reach b.ended, so
	// none is counted twice.
	for _, d := range devs {
		d.mu.Lock()
		sessions := slices.Clone(d.sessions)
		d.mu.Unlock()
		for _, s := range sessions {
			sum.Add(d.name, s.stats())
		}
	}
	return sum.Rows()
}
