package bench

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v4"
)

// A pion receiver reads its socket on one goroutine and hands each packet
// through two buffers of a fixed 1 MB (ICE agent, DTLS/SRTP mux) to the
// goroutines that decrypt and deliver it. When a burst arrives faster than
// those drain (the GOP cache toward a new viewer leaves the server in a
// few milliseconds), pion drops packets a big socket buffer would have
// kept. A gate holds the socket reads of one viewer while more than a
// window of RTP packets is inside pion, so bursts wait in the kernel's
// buffer instead; losses the bench reports are then the server's.

// gateWindow is how many RTP packets may be inside pion: about 360 KB,
// well under the 1 MB buffers (at 600, bursts toward 8 viewers on two
// cores still overflowed them).
const gateWindow = 300

// gateWait bounds one wait: a packet pion drops for good (a failed SRTP
// check) is never delivered, and must not stall the socket.
const gateWait = 5 * time.Millisecond

// gate counts a viewer's RTP packets in from its socket and out of its
// track.
type gate struct {
	in, out atomic.Int64
	forgive atomic.Int64 // packets given up on: read but never delivered
}

// delivered records a packet the viewer read from its track.
func (g *gate) delivered() { g.out.Add(1) }

// wait returns once the viewer has caught up to within the window, or
// after gateWait without progress.
func (g *gate) wait() {
	inside := g.in.Load() - g.out.Load() - g.forgive.Load()
	if inside < gateWindow {
		return
	}
	deadline := time.Now().Add(gateWait)
	last := g.out.Load()
	for {
		time.Sleep(50 * time.Microsecond)
		out := g.out.Load()
		if g.in.Load()-out-g.forgive.Load() < gateWindow {
			return
		}
		if out != last {
			last, deadline = out, time.Now().Add(gateWait)
			continue
		}
		if time.Now().After(deadline) {
			g.forgive.Store(g.in.Load() - out - gateWindow/2)
			return
		}
	}
}

// isRTP tells RTP from RTCP, DTLS and STUN on a shared socket (RFC 7983,
// RFC 5761): RTP and RTCP start with 128–191, RTCP's packet types are
// 192–223.
func isRTP(b []byte) bool {
	return len(b) >= 12 && b[0] >= 128 && b[0] <= 191 && (b[1] < 192 || b[1] > 223)
}

// gatedConn is a viewer's UDP socket behind its gate. It offers pion the
// allocation-free read path of *net.UDPConn.
type gatedConn struct {
	transport.UDPConn
	udp  *net.UDPConn
	gate *gate
}

func (c *gatedConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	c.gate.wait()
	n, addr, err := c.udp.ReadFromUDPAddrPort(b)
	if err == nil && isRTP(b[:n]) {
		c.gate.in.Add(1)
	}
	return n, addr, err
}

func (c *gatedConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.udp.WriteToUDPAddrPort(b, addr)
}

func (c *gatedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}
