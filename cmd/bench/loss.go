package bench

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/transport/v4"
)

// -viewer-loss and -publisher-loss drop packets in the bench's own
// sockets, the way a lossy network between the server and a peer would:
// a share of the SRTP and SRTCP datagrams (RFC 7983: first byte 128 to
// 191) each way, media, RTX and RTCP alike (NACKs, PLIs and reports
// too). STUN and DTLS pass, so sessions set up as on a clean path.
//
// Each direction of each socket draws from its own generator, seeded
// from -seed, the peer (the publisher, or the n-th viewer) and the
// direction: the same seed drops the same places of each direction's
// sequence of datagrams, so a run can be made again. Which packet sits
// at a place can differ between runs where timing interleaves media,
// repairs and RTCP differently.

// peerRole says which path a lossy socket is on.
type peerRole uint64

const (
	rolePublisher peerRole = 1
	roleViewer    peerRole = 2
)

// lossCount is what the lossy sockets of one path and direction saw:
// SRTP and SRTCP datagrams passed and dropped.
type lossCount struct{ passed, dropped atomic.Int64 }

// pathCounts are a path's two directions: in toward the bench's peer
// (from the server), out from it.
type pathCounts struct{ in, out lossCount }

// lossyPath is one socket's random drops, both ways.
type lossyPath struct {
	rate    float64
	in, out lossDraw
}

// lossDraw is one direction of a lossyPath. Writes come from several
// goroutines (pion's RTCP and the media writer), hence the lock.
type lossDraw struct {
	mu    sync.Mutex
	rng   *rand.Rand
	count *lossCount
}

// newLossyPath drops rate (0 to 1) of the packets of the index-th peer
// of role, counting in counts; nil for a rate of 0.
func newLossyPath(rate float64, seed uint64, role peerRole, index int, counts *pathCounts) *lossyPath {
	if rate <= 0 {
		return nil
	}
	stream := uint64(role)<<40 | uint64(index)<<1
	return &lossyPath{
		rate: rate,
		in:   lossDraw{rng: rand.New(rand.NewPCG(seed, stream)), count: &counts.in},
		out:  lossDraw{rng: rand.New(rand.NewPCG(seed, stream|1)), count: &counts.out},
	}
}

// dropIn says whether the datagram b, received, is lost on the way in.
func (l *lossyPath) dropIn(b []byte) bool {
	if l == nil {
		return false
	}
	return l.in.drop(b, l.rate)
}

// dropOut says whether the datagram b, to be sent, is lost on the way.
func (l *lossyPath) dropOut(b []byte) bool {
	if l == nil {
		return false
	}
	return l.out.drop(b, l.rate)
}

func (d *lossDraw) drop(b []byte, rate float64) bool {
	if !isSRTPOrSRTCP(b) {
		return false
	}
	d.mu.Lock()
	lost := d.rng.Float64() < rate
	d.mu.Unlock()
	if lost {
		d.count.dropped.Add(1)
	} else {
		d.count.passed.Add(1)
	}
	return lost
}

// isSRTPOrSRTCP demultiplexes a datagram as RFC 7983 does: RTP and RTCP
// start with 128 to 191 (version 2), STUN with 0 to 3, DTLS with 20 to 63.
func isSRTPOrSRTCP(b []byte) bool {
	return len(b) >= 8 && b[0] >= 128 && b[0] <= 191
}

// lossyConn is a socket behind a lossyPath: the publisher's (a viewer's
// gatedConn drops in its own read loop, beneath its direct path). It
// offers pion the allocation-free read path of *net.UDPConn.
type lossyConn struct {
	transport.UDPConn
	udp  *net.UDPConn
	loss *lossyPath
}

func (c *lossyConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := c.udp.ReadFromUDPAddrPort(b)
		if err != nil || !c.loss.dropIn(b[:n]) {
			return n, from, err
		}
	}
}

func (c *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}

func (c *lossyConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if c.loss.dropOut(b) {
		return len(b), nil
	}
	return c.udp.WriteToUDPAddrPort(b, addr)
}

func (c *lossyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.loss.dropOut(b) {
		return len(b), nil
	}
	return c.udp.WriteTo(b, addr)
}

// parseLoss reads a loss rate in percent, "5%" or "5" (0 to 50), as a
// fraction.
func parseLoss(flag, s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || !(v >= 0 && v <= 50) {
		return 0, fmt.Errorf("bench: -%s %q: want a percentage from 0 to 50, like 5%%", flag, s)
	}
	return v / 100, nil
}

// LossFigures are what a path's lossy sockets did during the window.
type LossFigures struct {
	// Rate is the loss asked for, in percent.
	Rate float64 `json:"rate_pct"`
	// In counts SRTP and SRTCP datagrams toward the bench's peers (from
	// the server), Out from them: dropped of all seen.
	InDropped  int64 `json:"in_dropped"`
	InSeen     int64 `json:"in_seen"`
	OutDropped int64 `json:"out_dropped"`
	OutSeen    int64 `json:"out_seen"`
}

// lossSample is a snapshot of a path's counters.
type lossSample struct{ inPassed, inDropped, outPassed, outDropped int64 }

func (p *pathCounts) sample() lossSample {
	return lossSample{p.in.passed.Load(), p.in.dropped.Load(), p.out.passed.Load(), p.out.dropped.Load()}
}

// lossFigures is what happened between two samples of a path with the
// given rate (a fraction); nil when the path was not lossy.
func lossFigures(rate float64, a, b lossSample) *LossFigures {
	if rate <= 0 {
		return nil
	}
	f := &LossFigures{Rate: round4(100 * rate), InDropped: b.inDropped - a.inDropped, OutDropped: b.outDropped - a.outDropped}
	f.InSeen = f.InDropped + b.inPassed - a.inPassed
	f.OutSeen = f.OutDropped + b.outPassed - a.outPassed
	return f
}

// String is "dropped in/out" with the shares, as the table shows it.
func (f *LossFigures) String() string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%s/%s", share(f.InDropped, f.InSeen), share(f.OutDropped, f.OutSeen))
}

func share(n, of int64) string {
	if of == 0 {
		return "0"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}
