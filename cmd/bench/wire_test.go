package bench

import (
	"testing"
	"time"
)

// A real loopback socket with timestamps on: the kernel time of a datagram
// lies between its send and its read, and is filed under its RTP sequence
// number, for the media payload type only.
func TestWireClockRecordsKernelReceiveTimes(t *testing.T) {
	rx := loopbackUDP(t)
	raw, err := rx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = enableTimestamps(fd) }); err != nil || serr != nil {
		t.Fatalf("enable SO_TIMESTAMPNS: %v %v", err, serr)
	}
	tx := dialUDP(t, rx)

	w := newWireClock(h264PayloadType)
	media := append([]byte{0x80, h264PayloadType, 0x12, 0x34}, make([]byte, 20)...)
	rtx := append([]byte{0x80, 103, 0x00, 0x07}, make([]byte, 20)...)
	before := time.Now().UnixNano()
	for _, b := range [][]byte{media, rtx} {
		if _, err := tx.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	buf, oob := make([]byte, 1500), make([]byte, 64)
	for range 2 {
		_ = rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, oobn, _, _, err := rx.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		w.record(buf[:n], kernelTime(oob[:oobn]))
	}
	after := time.Now().UnixNano()

	got := w.arrival(0x1234, after)
	if got < before || got >= after {
		t.Errorf("media packet's socket time %d not within its send %d and read %d", got, before, after)
	}
	if got := w.arrival(7, after); got != after {
		t.Errorf("an RTX packet was filed (%d): its sequence numbers are not the media's", got)
	}
	if got := w.arrival(0x1234, after+6e9); got != after+6e9 {
		t.Errorf("a socket time 6 s old was used for a new packet")
	}
	if kernelTime(oob[:0]) != 0 || kernelTime([]byte{1, 2, 3}) != 0 {
		t.Error("a time from no control message")
	}
}
