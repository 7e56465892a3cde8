package rtc

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// A compound RTCP datagram longer than 1500 bytes (at 8K rates: an
// interval's TWCC feedback, a long NACK list) reaches a sender built by
// NewAPI; pion's default receive MTU dropped it as a "short buffer".
func TestLongRTCPReachesTheSender(t *testing.T) {
	rtc := newTestTransport(t)
	api := newTestAPI(t, rtc, APIOptions{})
	v := connectViewer(t, api, nil)
	ssrc := uint32(v.sender.GetParameters().Encodings[0].SSRC)

	var compound []rtcp.Packet
	for range 3 { // 612 bytes each
		nack := &rtcp.TransportLayerNack{MediaSSRC: ssrc}
		for i := range 150 {
			nack.Nacks = append(nack.Nacks, rtcp.NackPair{PacketID: uint16(i * 17)})
		}
		compound = append(compound, nack)
	}
	compound = append(compound, &rtcp.PictureLossIndication{MediaSSRC: ssrc})
	if b, err := rtcp.Marshal(compound); err != nil || len(b) <= 1500 {
		t.Fatalf("test RTCP is %d bytes (%v), want over 1500", len(b), err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for v.plis.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a 1.8 KB compound RTCP datagram never reached the sender")
		}
		if err := v.viewer.WriteRTCP(compound); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
