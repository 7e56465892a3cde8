package rtc

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
)

// PeerOptions tune one session's PeerConnection on the transport.
type PeerOptions struct {
	// PionSRTP moves the session's media through pion's UDP mux, ICE
	// connection and SRTP session instead of beneath them, which costs
	// about twice the CPU per packet. Default false.
	PionSRTP bool
	// Log names the session in what the transport logs about it.
	// Default: the transport's log.
	Log *slog.Logger
}

func (o PeerOptions) log(t *Transport) *slog.Logger {
	if o.Log == nil {
		return t.log
	}
	return o.Log
}

// Ingest is one publisher's PeerConnection on the transport: the seam
// between a WHIP session and what lies beneath pion. Its RTP is read
// beneath pion where it can be (directIngest), its packets in flight count
// in the shared socket's read gate, ReadTrack moves a remote track's
// packets on, telling the NACK generator what came through RTX, and every
// remote track's RTCP is read (OnTrack) so that pion's reports see it.
type Ingest struct {
	t      *Transport
	pc     *webrtc.PeerConnection
	direct *directIngest // nil: pion's path for all
	gate   *gatedPeer
	once   sync.Once

	rtxMu sync.Mutex
	rtx   map[uint32]*atomic.Uint64 // packets recovered through RTX, by media SSRC

	rtcpMu     sync.Mutex
	rtcpClosed bool           // Close began: no new reader
	rtcp       sync.WaitGroup // the remote tracks' RTCP readers
}

// NewIngest makes the PeerConnection for a publisher's offer (not yet
// applied) with conf. The caller applies the offer to PeerConnection() and
// answers it; Close releases everything.
func (t *Transport) NewIngest(offer *sdp.SessionDescription, conf webrtc.Configuration, opt PeerOptions) (*Ingest, error) {
	var direct *directIngest
	if beneath(offer, opt.PionSRTP) {
		direct = newDirectIngest(opt.log(t))
	}
	pc, err := t.newPeer(conf, APIOptions{ingest: direct})
	if err != nil {
		return nil, err
	}
	if direct != nil {
		direct.declare(offer)
		if err := direct.watch(t, pc); err != nil {
			_ = pc.Close()
			return nil, fmt.Errorf("webrtc: %w", err)
		}
	}
	return &Ingest{t: t, pc: pc, direct: direct, gate: t.gate.add(pc, opt.log(t)), rtx: map[uint32]*atomic.Uint64{}}, nil
}

// PeerConnection is the publisher's PeerConnection. Its OnTrack is the
// Ingest's: use Ingest.OnTrack.
func (in *Ingest) PeerConnection() *webrtc.PeerConnection { return in.pc }

// OnTrack has f called with each remote track the publisher sends (every
// rid of a simulcast section), once the Ingest reads the track's RTCP
// until Close. f must not block.
func (in *Ingest) OnTrack(f func(*webrtc.TrackRemote)) {
	in.pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		in.readRTCP(r, t.RID())
		f(t)
	})
}

// readRTCP reads the RTCP of a remote track (of one rid of r, with
// simulcast) until the PeerConnection closes, and drops it: reading is what
// hands the publisher's Sender Reports to pion's report interceptor, whose
// receiver reports then carry LSR and DLSR (RFC 3550, 6.4.1), from which
// the publisher computes its round trip. Unread, they wait in pion's
// buffer, and our reports say LSR 0. At one or two reports a second there
// is nothing to gain from a shared reader; the buffer is one per track.
func (in *Ingest) readRTCP(r *webrtc.RTPReceiver, rid string) {
	in.rtcpMu.Lock()
	defer in.rtcpMu.Unlock()
	if in.rtcpClosed {
		return
	}
	in.rtcp.Go(func() {
		// pion never hands over more than receiveMTU: it decrypts
		// datagrams read into buffers of that size.
		buf := make([]byte, receiveMTU)
		for {
			var err error
			if rid == "" {
				_, _, err = r.Read(buf)
			} else {
				_, _, err = r.ReadSimulcast(buf, rid)
			}
			if err != nil {
				return // the receiver stopped: its streams are closed
			}
		}
	})
}

// RTT is the round trip to the publisher as ICE last measured it: a
// connectivity check or a consent refresh on the selected candidate pair
// (one every 2 s); false until the first answer to one.
func (in *Ingest) RTT() (time.Duration, bool) {
	return selectedPairRTT(in.pc)
}

// selectedPairRTT is the round trip ICE last measured on pc's selected
// candidate pair; false before ICE connects. Only then: pion's
// ICETransport sets up what GetSelectedCandidatePairStats reads in
// StartContext, on its operations goroutine, without a lock (the race
// detector caught a viewer's FollowRTT reading it while the answer's
// SetRemoteDescription started ICE); the connection state is an atomic
// that pion sets after.
func selectedPairRTT(pc *webrtc.PeerConnection) (time.Duration, bool) {
	switch pc.ICEConnectionState() {
	case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
	default:
		return 0, false
	}
	sctp := pc.SCTP()
	if sctp == nil {
		return 0, false
	}
	st, ok := sctp.Transport().ICETransport().GetSelectedCandidatePairStats()
	if !ok || st.CurrentRoundTripTime <= 0 {
		return 0, false
	}
	return time.Duration(st.CurrentRoundTripTime * float64(time.Second)), true
}

// ReadTrack reads a remote track until it ends, calling write with each
// packet: one buffer and one packet reused for every read, so at 10,000
// packets/s nothing is allocated. The packet is valid only during write.
func (in *Ingest) ReadTrack(t *webrtc.TrackRemote, write func(*rtp.Packet)) {
	nacks := in.t.nacks.For(in.pc.ID()) // nil with pion's generator
	rtx := in.rtxCounter(uint32(t.SSRC()))
	buf := make([]byte, 1600)
	var pkt rtp.Packet
	in.gate.StartReader()
	defer in.gate.StopReader()
	for {
		in.gate.Reading()
		n, attrs, err := t.Read(buf)
		if err != nil {
			return
		}
		in.gate.delivered()
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		if attrs != nil && attrs.Get(webrtc.AttributeRtxSsrc) != nil {
			// Recovered through RTX, past the interceptors: the NACK
			// generator would otherwise ask for it again.
			nacks.Received(pkt.SSRC, pkt.SequenceNumber)
			rtx.Add(1)
		}
		write(&pkt)
	}
}

func (in *Ingest) rtxCounter(ssrc uint32) *atomic.Uint64 {
	in.rtxMu.Lock()
	defer in.rtxMu.Unlock()
	c := in.rtx[ssrc]
	if c == nil {
		c = new(atomic.Uint64)
		in.rtx[ssrc] = c
	}
	return c
}

// Repair is the loss repair of the remote stream ssrc so far: sequence
// numbers asked for again, packets recovered through RTX, packets lost
// for good. Zero with pion's NACK generator.
func (in *Ingest) Repair(ssrc uint32) gateway.Repair {
	g := in.t.nacks.For(in.pc.ID()).Stats(ssrc)
	return gateway.Repair{NACKed: g.NACKed, Lost: g.Lost, Recovered: in.rtxCounter(ssrc).Load()}
}

// OnLost has f called with the SSRC of a stream whose packets went missing
// for good, as they do (see nack.Generator.OnLost): the caller asks for a
// keyframe. f must not block.
func (in *Ingest) OnLost(f func(ssrc uint32)) {
	in.t.nacks.For(in.pc.ID()).OnLost(f)
}

// IngestSRTP says how a publisher's media is read, for the API.
type IngestSRTP struct {
	// SRTP is "direct" when the publisher's media is read beneath pion,
	// else "pion"; the counts are the direct path's.
	SRTP                string `json:"srtp"`
	DirectReceived      uint64 `json:"direct_received,omitempty"`
	DirectDropped       uint64 `json:"direct_dropped,omitempty"`
	DirectUndecryptable uint64 `json:"direct_undecryptable,omitempty"`
}

// Stats says which path the publisher's media takes.
func (in *Ingest) Stats() IngestSRTP {
	st := IngestSRTP{SRTP: "pion"}
	if in.direct.isActive() {
		st.SRTP = "direct"
		st.DirectReceived, st.DirectDropped, st.DirectUndecryptable = in.direct.stats()
	}
	return st
}

// Close releases the read gate and the direct path, closes the
// PeerConnection and waits for the RTCP readers it ended; idempotent.
func (in *Ingest) Close() error {
	var err error
	in.once.Do(func() {
		in.rtcpMu.Lock()
		in.rtcpClosed = true
		in.rtcpMu.Unlock()
		in.t.gate.remove(in.gate)
		in.direct.unwatch(in.t)
		err = in.pc.Close()
		in.rtcp.Wait()
	})
	return err
}
