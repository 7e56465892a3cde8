package rtc

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"whipgate/internal/testkit"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtp"
	"github.com/pion/transport/v4"
	"github.com/pion/webrtc/v4"
)

// tapNet hands a copy of every datagram its sockets receive to tap, then
// to pion.
type tapNet struct {
	transport.Net
	tap func([]byte)
}

func (n *tapNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &tapConn{UDPConn: c, tap: n.tap}, nil
}

type tapConn struct {
	transport.UDPConn
	tap func([]byte)
}

func (c *tapConn) ReadFrom(p []byte) (int, net.Addr, error) {
	k, a, err := c.UDPConn.ReadFrom(p)
	if err == nil {
		c.tap(append([]byte(nil), p[:k]...))
	}
	return k, a, err
}

// clientTap decrypts, with a ClientSRTP, a copy of every RTP datagram a
// viewer's socket receives, and inspects the rest.
type clientTap struct {
	cs *ClientSRTP

	rtx atomic.Uint32 // the RTX stream's SSRC, once known

	mu           sync.Mutex
	got          map[uint16][]byte // payloads by sequence number, RTX repairs under the original's
	unknown, bad int               // before the keys were known; failed
}

func newClientTap(t testing.TB) (*clientTap, *tapNet) {
	c := &clientTap{cs: NewClientSRTP(), got: map[uint16][]byte{}}
	return c, &tapNet{Net: testkit.StdNet(t), tap: c.datagram}
}

func (c *clientTap) datagram(b []byte) {
	if !IsRTP(b) {
		c.cs.Inspect(b)
		return
	}
	pkt, err := c.cs.DecryptRTP(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	var r rtp.Packet
	switch {
	case errors.Is(err, ErrSRTPKeysUnknown):
		c.unknown++
	case err != nil || r.Unmarshal(pkt) != nil:
		c.bad++
	case r.SSRC == c.rtx.Load() && len(r.Payload) >= 2:
		// A repair of what the loaded machine's socket lost (RFC 4588: the
		// original sequence number leads the payload).
		c.got[binary.BigEndian.Uint16(r.Payload)] = r.Payload[2:]
	default:
		c.got[r.SequenceNumber] = r.Payload
	}
}

// A viewer that is DTLS client decrypts, from its own socket, the packets
// the server seals with either profile, on pion's path and on directSRTP:
// the same packets pion's own receive path gets.
func TestClientSRTPDecryptsBeneathPion(t *testing.T) {
	profiles := map[string]dtls.SRTPProtectionProfile{"AEAD_AES_128_GCM": dtls.SRTP_AEAD_AES_128_GCM, "AES128_CM_HMAC_SHA1_80": dtls.SRTP_AES128_CM_HMAC_SHA1_80}
	for name, p := range profiles {
		for _, direct := range []bool{false, true} {
			t.Run(name+map[bool]string{false: "/pion", true: "/direct"}[direct], func(t *testing.T) {
				const first, n = 3000, 600
				rtc := newTestTransport(t)
				// directSRTP makes the server answer as DTLS server, as
				// whipgate's WHEP does; not activated, pion's path sends.
				d := newDirectSRTP(testkit.Log(t))
				api := newTestAPI(t, rtc, APIOptions{direct: d})
				c, tap := newClientTap(t)
				v := connectViewerWith(t, api, testkit.PionAPIWith(t, tap, func(se *webrtc.SettingEngine) {
					se.SetSRTPProtectionProfiles(p)
					c.cs.Configure(se)
				}))
				if enc := v.sender.GetParameters().Encodings; len(enc) > 0 {
					c.rtx.Store(uint32(enc[0].RTX.SSRC))
				}
				if direct {
					if err := d.activate(rtc.conns, v.pc); err != nil {
						t.Fatal(err)
					}
				}
				sendAllTapped(t, rtc, v, first, n)
				c.mu.Lock()
				defer c.mu.Unlock()
				if c.bad != 0 || c.unknown != 0 {
					t.Fatalf("%d packets failed to decrypt, %d came before the keys were known", c.bad, c.unknown)
				}
				for i := range n {
					pl := c.got[first+uint16(i)]
					if len(pl) != 1200 || pl[0] != 0x41 {
						t.Fatalf("packet %d: decrypted %d bytes, want pion's 1200-byte payload starting 0x41", first+i, len(pl))
					}
				}
			})
		}
	}
}

// As DTLS server the viewer sees no ServerHello from the other side: the
// keys stay unknown, and every packet is left to pion.
func TestClientSRTPLeavesPacketsAsDTLSServer(t *testing.T) {
	const first, n = 100, 200
	rtc := newTestTransport(t)
	api := newTestAPI(t, rtc, APIOptions{}) // pion's answering default: DTLS client
	c, tap := newClientTap(t)
	v := connectViewerWith(t, api, testkit.PionAPIWith(t, tap, c.cs.Configure))
	sendAllTapped(t, rtc, v, first, n)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unknown < n || c.bad != 0 || len(c.got) != 0 {
		t.Fatalf("%d packets with unknown keys, %d failed, %d decrypted; want all %d unknown", c.unknown, c.bad, len(c.got), n)
	}
}

// sendAllTapped sends packets first..first+n-1 to v through a batch and waits
// until pion's viewer has them all.
func sendAllTapped(t *testing.T, rtc *Transport, v *viewer, first uint16, n int) {
	t.Helper()
	batch := newPeerBatch(rtc.conns, v.pc)
	t.Cleanup(func() { _ = batch.close() })
	sendAll(t, v, batch, first, n, "all packets at pion's viewer")
}
