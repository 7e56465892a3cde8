package rtc

import (
	"errors"
	"fmt"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc/dtlskeys"
)

// ClientSRTP decrypts, beneath pion, the SRTP that a PeerConnection
// receives as DTLS client: the receiving twin of directSRTP. The keys come
// from the same handshake secrets — the client random and master secret
// from the DTLS key log, and the server random, cipher suite and SRTP
// profile from the server's ServerHello, which the caller reads off the
// wire (pion has a hook for the hello it sends, none for one it receives).
//
// whipgate's bench gives it to its WHEP viewers, so that a viewer costs one
// decryption per packet instead of pion's receive path (its buffers, its
// goroutine hops, its interceptors): the viewers share the machine with the
// server they measure. A packet it decrypts never reaches pion; RTCP, STUN
// and DTLS still do.
type ClientSRTP struct {
	keys dtlskeys.Secrets

	mu  sync.Mutex
	ctx *srtp.Context
	hdr rtp.Header
}

// ErrSRTPKeysUnknown is DecryptRTP's error before the handshake has shown
// both halves of the secrets: the packet is not ours to take.
var ErrSRTPKeysUnknown = errors.New("whip: client srtp: handshake secrets not seen yet")

// NewClientSRTP returns a ClientSRTP for the one PeerConnection of the API
// whose SettingEngine it configures.
func NewClientSRTP() *ClientSRTP { return &ClientSRTP{} }

// Configure has se's DTLS log its secrets to c. One API per ClientSRTP:
// the key log must see one handshake.
func (c *ClientSRTP) Configure(se *webrtc.SettingEngine) {
	se.SetDTLSKeyLogWriter(c.keys.KeyLog())
}

// Inspect notes the ServerHello in a received datagram, if it carries
// one; anything else is ignored. Cheap for non-DTLS datagrams.
func (c *ClientSRTP) Inspect(b []byte) { c.keys.Inspect(b) }

// DecryptRTP decrypts one SRTP packet in place and returns the RTP packet
// within b. ErrSRTPKeysUnknown means the handshake has not been seen whole
// yet; any other error, a packet that does not authenticate.
func (c *ClientSRTP) DecryptRTP(b []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		ctx, err := c.context()
		if err != nil {
			return nil, err
		}
		c.ctx = ctx
	}
	return c.ctx.DecryptRTP(b, b, &c.hdr)
}

// context derives the server's sending keys (RFC 5764) from the secrets.
func (c *ClientSRTP) context() (*srtp.Context, error) {
	ctx, err := c.keys.Context(false)
	if errors.Is(err, dtlskeys.ErrUnseen) {
		return nil, ErrSRTPKeysUnknown
	}
	if err != nil {
		return nil, fmt.Errorf("whip: client srtp: %w", err)
	}
	return ctx, nil
}
