package bench

import (
	"io"
	"net"
	"slices"
	"strings"
	"testing"
)

// Datagrams as the demultiplexer of RFC 7983 sees them.
var (
	rtpDatagram  = append([]byte{0x80, 102}, make([]byte, 100)...)
	rtcpDatagram = append([]byte{0x81, 201}, make([]byte, 30)...) // a receiver report
	stunDatagram = append([]byte{0x00, 0x01}, make([]byte, 18)...)
	dtlsDatagram = append([]byte{22, 0xfe, 0xfd}, make([]byte, 40)...)
)

// pattern is which of n datagrams a direction drops.
func pattern(n int, drop func([]byte) bool) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = drop(rtpDatagram)
	}
	return out
}

func TestLossyPathDropsItsShareOfMediaAndRTCPOnly(t *testing.T) {
	var counts pathCounts
	l := newLossyPath(0.05, 1, roleViewer, 0, &counts)
	const n = 20000
	for range n {
		l.dropIn(rtpDatagram)
		l.dropOut(rtcpDatagram)
		for _, b := range [][]byte{stunDatagram, dtlsDatagram, rtpDatagram[:7]} {
			if l.dropIn(b) || l.dropOut(b) {
				t.Fatalf("dropped % x: only SRTP and SRTCP are lost", b[:3])
			}
		}
	}
	s := counts.sample()
	for _, d := range []struct {
		what            string
		dropped, passed int64
	}{{"in", s.inDropped, s.inPassed}, {"out", s.outDropped, s.outPassed}} {
		if d.dropped+d.passed != n || d.dropped < n*4/100 || d.dropped > n*6/100 {
			t.Errorf("%s: dropped %d, passed %d; want about 5 %% of %d, all counted", d.what, d.dropped, d.passed, n)
		}
	}
	if newLossyPath(0, 1, roleViewer, 0, &counts) != nil {
		t.Error("a path without loss is not nil")
	}
	var none *lossyPath
	if none.dropIn(rtpDatagram) || none.dropOut(rtpDatagram) {
		t.Error("a nil path dropped a packet")
	}
}

// A seed makes the drops again: the same peer and direction drop the same
// places; another peer, direction or seed others.
func TestLossyPathIsSeeded(t *testing.T) {
	var counts pathCounts
	in := func(seed uint64, role peerRole, index int) []bool {
		return pattern(2000, newLossyPath(0.1, seed, role, index, &counts).dropIn)
	}
	a := in(1, roleViewer, 0)
	if !slices.Equal(a, in(1, roleViewer, 0)) {
		t.Error("the same seed and peer dropped other places")
	}
	for what, other := range map[string][]bool{
		"another seed":   in(2, roleViewer, 0),
		"another viewer": in(1, roleViewer, 1),
		"the publisher":  in(1, rolePublisher, 0),
		"the way out":    pattern(2000, newLossyPath(0.1, 1, roleViewer, 0, &counts).dropOut),
	} {
		if slices.Equal(a, other) {
			t.Errorf("%s dropped the same places as viewer 0's way in", what)
		}
	}
}

// A lossyConn drops on a real socket both ways, and passes what is not
// media or RTCP.
func TestLossyConnDropsBothWays(t *testing.T) {
	listen := func() *net.UDPConn {
		c := loopbackUDP(t)
		_ = c.SetReadBuffer(1 << 20)
		return c
	}
	raw, peer := listen(), listen()
	var counts pathCounts
	c := &lossyConn{UDPConn: raw, udp: raw, loss: newLossyPath(0.5, 3, rolePublisher, 0, &counts)}
	const n = 200
	to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	for i := range n {
		var err error
		if i%2 == 0 {
			_, err = c.WriteToAddrPort(rtpDatagram, to)
		} else {
			_, err = c.WriteTo(rtpDatagram, peer.LocalAddr())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WriteTo(stunDatagram, peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := peer.WriteTo(rtpDatagram, raw.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := peer.WriteTo(stunDatagram, raw.LocalAddr()); err != nil {
		t.Fatal(err)
	}

	// Each side reads until the STUN datagram, which always passes.
	readAll := func(read func([]byte) (int, error)) (media int) {
		buf := make([]byte, 1500)
		for {
			_, err := read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if buf[0] == stunDatagram[0] {
				return media
			}
			media++
		}
	}
	arrived := readAll(func(b []byte) (int, error) { k, _, err := peer.ReadFrom(b); return k, err })
	taken := readAll(func(b []byte) (int, error) { k, _, err := c.ReadFrom(b); return k, err })
	s := counts.sample()
	if int64(arrived) != s.outPassed || s.outPassed+s.outDropped != n || s.outDropped < n/4 {
		t.Errorf("sent: %d arrived, counted %d passed and %d dropped of %d; want about half dropped, the rest arrived", arrived, s.outPassed, s.outDropped, n)
	}
	if int64(taken) != s.inPassed || s.inPassed+s.inDropped != n || s.inDropped < n/4 {
		t.Errorf("received: %d read, counted %d passed and %d dropped of %d; want about half dropped, the rest read", taken, s.inPassed, s.inDropped, n)
	}
}

func TestParseLoss(t *testing.T) {
	for in, want := range map[string]float64{"5%": 0.05, "5": 0.05, " 0.5% ": 0.005, "0": 0, "50%": 0.5} {
		if got, err := parseLoss("loss", in); err != nil || got != want {
			t.Errorf("parseLoss(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "%", "-1%", "51%", "5%%", "NaN", "0.05x"} {
		if got, err := parseLoss("loss", in); err == nil {
			t.Errorf("parseLoss(%q) = %v, want an error", in, got)
		}
	}
	o, err := parseOptions(strings.Fields("-loss 5% -publisher-loss 1 -seed 9"), io.Discard)
	if err != nil || o.ViewerLoss != 0.05 || o.PublisherLoss != 0.01 || o.Seed != 9 {
		t.Errorf("-loss 5%% -publisher-loss 1 -seed 9: viewers %v, publisher %v, seed %d, %v; want 0.05, 0.01 (its own flag wins), 9",
			o.ViewerLoss, o.PublisherLoss, o.Seed, err)
	}
	o, err = parseOptions(strings.Fields("-viewer-loss 2%"), io.Discard)
	if err != nil || o.ViewerLoss != 0.02 || o.PublisherLoss != 0 || o.Seed != 1 {
		t.Errorf("-viewer-loss 2%%: viewers %v, publisher %v, seed %d, %v; want 0.02, 0, the default seed 1", o.ViewerLoss, o.PublisherLoss, o.Seed, err)
	}
	if _, err := parseOptions(strings.Fields("-loss 5% -viewer-loss x"), io.Discard); err == nil || !strings.Contains(err.Error(), "-viewer-loss") {
		t.Errorf("a bad -viewer-loss: %v, want an error naming it", err)
	}
}

func TestLossFigures(t *testing.T) {
	f := lossFigures(0.05, lossSample{inPassed: 100, inDropped: 5, outPassed: 10, outDropped: 1},
		lossSample{inPassed: 1050, inDropped: 55, outPassed: 30, outDropped: 1})
	if *f != (LossFigures{Rate: 5, InDropped: 50, InSeen: 1000, OutDropped: 0, OutSeen: 20}) || f.String() != "5.0%/0.0%" {
		t.Errorf("got %+v (%s), want 50 of 1000 in, 0 of 20 out", *f, f)
	}
	if f := lossFigures(0, lossSample{}, lossSample{inPassed: 5}); f != nil || f.String() != "-" {
		t.Errorf("a path without loss has figures %+v", f)
	}
}
