package nack

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// recordWriter records what the responder writes.
type recordWriter struct{ pkts []rtp.Packet }

func (w *recordWriter) Write(h *rtp.Header, payload []byte, _ interceptor.Attributes) (int, error) {
	w.pkts = append(w.pkts, rtp.Packet{Header: h.Clone(), Payload: append([]byte(nil), payload...)})
	return len(payload), nil
}

// bindResponder binds a responder of the given history to one stream with NACK,
// optionally RTX, and transport-cc as extension 5.
func bindResponder(t testing.TB, size uint16, rtx bool, opts ...ResponderOption) (*Responder, interceptor.RTPWriter, *recordWriter) {
	t.Helper()
	return bindResponderExts(t, size, rtx, nil, opts...)
}

// bindResponderExts is bindResponder with more header extensions negotiated.
func bindResponderExts(t testing.TB, size uint16, rtx bool, exts []interceptor.RTPHeaderExtension, opts ...ResponderOption) (*Responder, interceptor.RTPWriter, *recordWriter) {
	t.Helper()
	f := NewResponderFactory(size, slog.New(slog.DiscardHandler), opts...)
	i, err := f.NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	n := i.(*Responder)
	info := &interceptor.StreamInfo{SSRC: 1111, PayloadType: 102, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}},
		RTPHeaderExtensions: append([]interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 5}}, exts...)}
	if rtx {
		info.SSRCRetransmission, info.PayloadTypeRetransmission = 2222, 103
	}
	out := &recordWriter{}
	return n, n.BindLocalStream(info, out), out
}

func nackFor(n *Responder, seqs ...uint16) {
	n.resend(&rtcp.TransportLayerNack{MediaSSRC: 1111, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)})
}

func payloadOf(seq uint16) []byte { return []byte{0x41, byte(seq >> 8), byte(seq)} }

// The history answers for the last size sequence numbers and nothing
// older, across wrap-around, never with a packet from an earlier lap, and
// with the latest write of a repeated sequence number.
func TestNACKHistoryWindow(t *testing.T) {
	// Tiny payloads: a budget of 10 times the bytes sent lets every
	// re-send through.
	n, w, out := bindResponder(t, 8, false, ResendBudget(1000))
	write := func(seq uint16, payload []byte) {
		if _, err := w.Write(&rtp.Header{Version: 2, SSRC: 1111, SequenceNumber: seq, Timestamp: uint32(seq) * 10}, payload, nil); err != nil {
			t.Fatal(err)
		}
	}
	for seq := uint16(65530); seq != 4; seq++ { // 65530..3: wraps
		write(seq, payloadOf(seq))
	}
	write(6, payloadOf(6)) // skips 4 and 5
	write(2, []byte("again"))
	out.pkts = nil

	nackFor(n, 65530, 65531, 65534, 0, 2, 4, 5, 6, 14)
	var got []uint16
	for _, p := range out.pkts {
		got = append(got, p.SequenceNumber)
		if p.SSRC != 1111 || p.PayloadType != 102 || p.Timestamp != uint32(p.SequenceNumber)*10 {
			t.Errorf("seq %d: got ssrc %d pt %d ts %d", p.SequenceNumber, p.SSRC, p.PayloadType, p.Timestamp)
		}
		want := payloadOf(p.SequenceNumber)
		if p.SequenceNumber == 2 {
			want = []byte("again")
		}
		if !bytes.Equal(p.Payload, want) {
			t.Errorf("seq %d: got payload %q, want %q", p.SequenceNumber, p.Payload, want)
		}
	}
	// Held: 65535..6 minus the skipped 4 and 5; 65530/65531 fell out of
	// the 8-packet window, 14 was never sent (and would hit 6's slot).
	if want := []uint16{0, 2, 6}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("re-sent %v, want %v", got, want)
	}

	// A jump of more than the window forgets everything before it.
	write(100, payloadOf(100))
	out.pkts = nil
	nackFor(n, 6, 92, 100)
	if len(out.pkts) != 1 || out.pkts[0].SequenceNumber != 100 {
		t.Fatalf("after a jump re-sent %d packets, want only 100", len(out.pkts))
	}
}

// With RTX, a re-send carries the original sequence number before the
// payload on the RTX SSRC and payload type with its own consecutive
// sequence numbers; it keeps mid and rid extensions but not the
// transport-wide sequence number, and leaves the stored extensions alone.
func TestNACKResponderRTX(t *testing.T) {
	n, w, out := bindResponder(t, 64, true, ResendBudget(1000))
	var tmpl rtp.Header
	for _, e := range []struct {
		id uint8
		v  string
	}{{1, "0"}, {5, "\x00\x07"}, {10, "hi"}} {
		if err := tmpl.SetExtension(e.id, []byte(e.v)); err != nil {
			t.Fatal(err)
		}
	}
	for seq := uint16(10); seq < 20; seq++ {
		h := tmpl.Clone()
		h.SSRC, h.SequenceNumber, h.Timestamp, h.Marker = 1111, seq, 900, seq == 19
		if _, err := w.Write(&h, payloadOf(seq), nil); err != nil {
			t.Fatal(err)
		}
	}
	stored := out.pkts[3].Header
	out.pkts = nil
	nackFor(n, 13, 19)
	if len(out.pkts) != 2 {
		t.Fatalf("re-sent %d packets, want 2", len(out.pkts))
	}
	for i, p := range out.pkts {
		orig := []uint16{13, 19}[i]
		if p.SSRC != 2222 || p.PayloadType != 103 || p.Timestamp != 900 || p.Marker != (orig == 19) {
			t.Errorf("re-send %d: got ssrc %d pt %d ts %d marker %v", i, p.SSRC, p.PayloadType, p.Timestamp, p.Marker)
		}
		if want := append(binary.BigEndian.AppendUint16(nil, orig), payloadOf(orig)...); !bytes.Equal(p.Payload, want) {
			t.Errorf("re-send %d: got payload %x, want %x", i, p.Payload, want)
		}
		if got := string(p.GetExtension(1)) + "/" + string(p.GetExtension(10)); got != "0/hi" {
			t.Errorf("re-send %d: got mid/rid %q", i, got)
		}
		if p.GetExtension(5) != nil {
			t.Errorf("re-send %d repeats the transport-wide sequence number", i)
		}
	}
	if out.pkts[1].SequenceNumber != out.pkts[0].SequenceNumber+1 {
		t.Errorf("RTX sequence numbers %d, %d are not consecutive", out.pkts[0].SequenceNumber, out.pkts[1].SequenceNumber)
	}
	if stored.GetExtension(5) == nil {
		t.Error("the re-send removed an extension from the stored header")
	}
}

// An RTX re-send of a simulcast layer names the layer in
// repaired-rtp-stream-id, not rid (RFC 8852 §3.2): pion, as a target,
// took RTX with a rid for a layer of its own and read repairs as media.
// Without repaired-rtp-stream-id negotiated the rid is only dropped. mid
// stays either way.
func TestNACKResponderRTXNamesRepairedLayer(t *testing.T) {
	for _, rrid := range []bool{true, false} {
		t.Run(fmt.Sprintf("rrid=%v", rrid), func(t *testing.T) {
			exts := []interceptor.RTPHeaderExtension{{URI: sdp.SDESMidURI, ID: 1}, {URI: sdp.SDESRTPStreamIDURI, ID: 10}}
			if rrid {
				exts = append(exts, interceptor.RTPHeaderExtension{URI: sdp.SDESRepairRTPStreamIDURI, ID: 11})
			}
			n, w, out := bindResponderExts(t, 64, true, exts, ResendBudget(1000))
			h := rtp.Header{SSRC: 1111, SequenceNumber: 7, Timestamp: 900}
			for _, e := range []struct {
				id uint8
				v  string
			}{{1, "0"}, {10, "main"}} {
				if err := h.SetExtension(e.id, []byte(e.v)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.Write(&h, payloadOf(7), nil); err != nil {
				t.Fatal(err)
			}
			out.pkts = nil
			nackFor(n, 7)
			if len(out.pkts) != 1 {
				t.Fatalf("re-sent %d packets, want 1", len(out.pkts))
			}
			p := out.pkts[0]
			wantRRID := ""
			if rrid {
				wantRRID = "main"
			}
			if p.SSRC != 2222 || p.GetExtension(10) != nil || string(p.GetExtension(11)) != wantRRID || string(p.GetExtension(1)) != "0" {
				t.Errorf("re-send: ssrc %d, rid %q, repaired rid %q, mid %q; want 2222, none, %q, \"0\"",
					p.SSRC, p.GetExtension(10), p.GetExtension(11), p.GetExtension(1), wantRRID)
			}
		})
	}
}

// BenchmarkNACKResponderWrite is the responder's cost per sent packet
// (recording it in the history), ours against pion's copying one.
func BenchmarkNACKResponderWrite(b *testing.B) {
	for _, pion := range []bool{false, true} {
		name := "ours"
		if pion {
			name = "pion"
		}
		b.Run(name, func(b *testing.B) {
			var f interceptor.Factory = NewResponderFactory(4096, slog.New(slog.DiscardHandler))
			if pion {
				var err error
				if f, err = nack.NewResponderInterceptor(nack.ResponderSize(4096)); err != nil {
					b.Fatal(err)
				}
			}
			i, err := f.NewInterceptor("")
			if err != nil {
				b.Fatal(err)
			}
			info := &interceptor.StreamInfo{SSRC: 1111, PayloadType: 102, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}},
				SSRCRetransmission: 2222, PayloadTypeRetransmission: 103}
			w := i.BindLocalStream(info, interceptor.RTPWriterFunc(func(_ *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
				return len(p), nil
			}))
			payload := make([]byte, 1200)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			h := rtp.Header{Version: 2, SSRC: 1111}
			for k := 0; b.Loop(); k++ {
				h.SequenceNumber, h.Timestamp = uint16(k), uint32(k/100)*3000
				if _, err := w.Write(&h, payload, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
