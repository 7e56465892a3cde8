package bench

import (
	"encoding/binary"
	"sync/atomic"
)

// A frame's latency as a viewer sees it includes the viewer's own pion
// receive path (a copy per buffer, SRTP decryption, two goroutine hops),
// which on a machine the bench shares with the server queues as much as
// the server does. The wire latency leaves it out: a viewer's socket gives
// each datagram the kernel's receive time (SO_TIMESTAMPNS), which on
// loopback is the moment the server's send delivered it. A frame's wire
// time is that of the packet that completed it.

// wireClock is one viewer's socket arrival times of its media stream's
// packets, by RTP sequence number (the header is not encrypted by SRTP).
// The socket reader writes, the track reader reads.
type wireClock struct {
	pt uint8 // the media payload type: RTX repairs carry their own numbers
	at [1 << 16]atomic.Int64
}

func newWireClock(pt uint8) *wireClock { return &wireClock{pt: pt} }

// record notes a datagram's kernel receive time t (unix ns; 0: none).
func (w *wireClock) record(b []byte, t int64) {
	if w == nil || t <= 0 || len(b) < 12 || b[1]&0x7f != w.pt {
		return
	}
	w.at[binary.BigEndian.Uint16(b[2:4])].Store(t)
}

// arrival is when the packet with sequence number seq reached the socket,
// if that was within maxAge before now (unix ns); otherwise now.
func (w *wireClock) arrival(seq uint16, now int64) int64 {
	if w == nil {
		return now
	}
	const maxAge = 5e9 // a number used 65536 packets ago is not this packet
	if t := w.at[seq].Load(); t > 0 && t <= now && now-t < maxAge {
		return t
	}
	return now
}
