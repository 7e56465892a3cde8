package bench

import (
	"net"
	"net/netip"
	"time"

	"whipgate/whip/rtc"
	"whipgate/whip/rtc/udp"
)

// Each viewer's socket is gated like whipgate's own WHIP ingest (see
// rtc.Backlog), so that bursts wait in the kernel instead of overflowing
// pion's fixed buffers, and the losses the bench reports are the server's.
// Window: 300 packets (360 KB; at 600, bursts toward 8 viewers on two
// cores still overflowed). The waits are far longer than the server's: a
// viewer's 32 MB socket buffer holds 2.5 s of 100 Mbps, and on a saturated
// machine its goroutines starve for longer.
const (
	gateWindow = 300
	gateIdle   = 100 * time.Millisecond
	gateStall  = 200 * time.Millisecond
)

// gate is a viewer's backlog inside pion.
type gate = rtc.Backlog

func newGate() *gate { return rtc.NewBacklog(gateWindow, gateIdle, gateStall) }

// gatedConn is a viewer's UDP socket behind its gate. It offers pion the
// allocation-free read path of *net.UDPConn.
//
// With UDP_GRO on, a GSO message from the server arrives whole, as on a
// real network where the receiver's NIC and kernel deal with it: on
// loopback the kernel otherwise splits it into datagrams inside the
// server's send call and charges that work to the server. Its segments are
// handed to pion one read at a time.
//
// Its writes, and its reads in its own loop, pass its lossy path.
type gatedConn struct {
	lossyConn
	gate *gate
	wire *wireClock
	oob  [64]byte // the reader's: a kernel timestamp

	gro    *udp.CoalescedReader // nil: one datagram per read
	direct *directReceive       // nil: all media through pion
	counts *rtpCounts           // nil: not counted
}

// ReadFromAddrPort returns the next datagram for pion: media the direct
// path takes is not returned.
func (c *gatedConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		var d, oob []byte
		var from netip.AddrPort
		if c.gro == nil {
			n, oobn, _, addr, err := c.udp.ReadMsgUDPAddrPort(b, c.oob[:])
			if err != nil {
				return n, addr, err
			}
			d, oob, from = b[:n], c.oob[:oobn], addr
		} else {
			var err error
			if d, from, oob, err = c.gro.Next(c.udp); err != nil {
				return 0, from, err
			}
		}
		c.counts.count(d)
		if c.loss.dropIn(d) {
			continue
		}
		if c.direct != nil && c.direct.datagram(d, kernelTime(oob)) {
			continue
		}
		c.received(d, oob)
		if c.gro == nil {
			return len(d), from, nil
		}
		return copy(b, d), from, nil
	}
}

// received books a datagram read with its control messages oob.
func (c *gatedConn) received(p, oob []byte) {
	if rtc.IsRTP(p) {
		c.wire.record(p, kernelTime(oob))
		c.gate.Received()
	}
}

func (c *gatedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}
