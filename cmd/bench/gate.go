package bench

import (
	"net"
	"net/netip"
	"time"

	"github.com/pion/transport/v4"

	"whipgate/whip"
)

// Each viewer's socket is gated like whipgate's own WHIP ingest (see
// whip.Backlog), so that bursts wait in the kernel instead of overflowing
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
type gate = whip.Backlog

func newGate() *gate { return whip.NewBacklog(gateWindow, gateIdle, gateStall) }

// gatedConn is a viewer's UDP socket behind its gate. It offers pion the
// allocation-free read path of *net.UDPConn.
type gatedConn struct {
	transport.UDPConn
	udp  *net.UDPConn
	gate *gate
	wire *wireClock
	oob  [64]byte // the reader's: a kernel timestamp
}

func (c *gatedConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	n, oobn, _, addr, err := c.udp.ReadMsgUDPAddrPort(b, c.oob[:])
	if err == nil && whip.IsRTP(b[:n]) {
		c.wire.record(b[:n], c.oob[:oobn])
		c.gate.Received()
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
