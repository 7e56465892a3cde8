package gateway

// Packet is one RTP packet as the hub holds it: the payload is shared by
// every subscriber and never changes once published; each subscriber derives
// its own header (sequence number, timestamp, SSRC, payload type) from it.
type Packet struct {
	Payload   []byte
	Timestamp uint32
	Seq       uint16
	Marker    bool
	// KeyStart marks the first packet a decoder can start with: the start
	// of a keyframe's access unit (or any audio packet).
	KeyStart bool
	// Arrival is when the hub got the packet, in nanoseconds on the hub's
	// monotonic clock.
	Arrival int64
	// epoch tells which publication of its track wrote the packet.
	epoch uint32
}

// slab hands out Packets and payload storage in chunks, so a publisher
// writing 10,000 packets a second allocates a few times a second rather
// than twice per packet. A chunk lives until no queue or GOP cache holds
// any packet cut from it.
type slab struct {
	pkts []Packet
	buf  []byte
}

const (
	slabPackets = 256
	slabBytes   = 256 << 10
)

func (s *slab) packet(payload []byte) *Packet {
	if len(s.pkts) == 0 {
		s.pkts = make([]Packet, slabPackets)
	}
	p := &s.pkts[0]
	s.pkts = s.pkts[1:]
	n := len(payload)
	if n > slabBytes/4 {
		p.Payload = append([]byte(nil), payload...)
		return p
	}
	if len(s.buf) < n {
		s.buf = make([]byte, slabBytes)
	}
	p.Payload = s.buf[:n:n]
	s.buf = s.buf[n:]
	copy(p.Payload, payload)
	return p
}
