package udp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"
	"unsafe"

	"whipgate/internal/testkit"

	"golang.org/x/sys/unix"
)

func ptrTo(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

// The segment size comes only from a well-formed UDP_GRO control message;
// anything else reads as one datagram.
func TestGROSegment(t *testing.T) {
	gro := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(ptrTo(gro))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_GRO
	h.SetLen(unix.CmsgLen(4))
	*(*int32)(unsafe.Pointer(&gro[unix.CmsgLen(0)])) = 1200
	const want = 1200
	if got := groSegment(gro); got != want {
		t.Fatalf("segment %d from a UDP_GRO message of %d", got, want)
	}
	other := make([]byte, unix.CmsgSpace(16))
	o := (*unix.Cmsghdr)(ptrTo(other))
	o.Level, o.Type = unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS
	o.SetLen(unix.CmsgLen(16))
	for _, tc := range []struct {
		name string
		oob  []byte
		want int
	}{
		{"none", nil, 0},
		{"truncated header", gro[:4], 0},
		{"length past the end", gro[:unix.CmsgLen(2)], 0},
		{"another message only", other, 0},
		{"after another message", append(append([]byte(nil), other...), gro...), want},
	} {
		if got := groSegment(tc.oob); got != tc.want {
			t.Errorf("%s: segment %d, want %d", tc.name, got, tc.want)
		}
	}
}

// The reader hands out every datagram of several senders in the order each
// sent them, with the right sender, whether they arrived one per message
// or coalesced (a GSO sender), more than one recvmmsg batch at a time; on
// IPv4 and on IPv6. A read deadline times out as a net timeout; Close ends
// the reader.
func TestCoalescedReaderBatches(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			rx := testkit.LoopbackUDP(t, network)
			_ = rx.SetReadBuffer(8 << 20)
			if err := EnableGRO(rx); err != nil {
				t.Fatalf("UDP_GRO (Linux ≥ 5.0 needed): %v", err)
			}
			to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
			// Three plain senders and one that sends GSO messages.
			var senders []*net.UDPConn
			for range 3 {
				senders = append(senders, testkit.LoopbackUDP(t, network))
			}
			gsoConn := testkit.LoopbackUDP(t, network)
			bc := New(gsoConn, testkit.PionLog(t), nil)
			defer bc.Close()
			if !bc.gso.Load() {
				t.Fatal("this kernel has no UDP GSO (Linux ≥ 4.18 needed)")
			}
			const per = 100 // each sender: 100 datagrams, 6+ recvmmsg batches in all
			want := map[netip.AddrPort][]int{}
			for i := range per {
				for k, s := range senders {
					p := datagram(i, 200+k)
					if _, err := s.WriteToUDPAddrPort(p, to); err != nil {
						t.Fatal(err)
					}
					from := s.LocalAddr().(*net.UDPAddr).AddrPort()
					want[from] = append(want[from], i)
				}
			}
			batch := bc.NewBatch()
			batch.Open(to)
			for i := range per {
				if _, err := bc.WriteToAddrPort(datagram(i, 1200), to); err != nil {
					t.Fatal(err)
				}
			}
			if err := batch.Close(); err != nil {
				t.Fatal(err)
			}
			gsoFrom := gsoConn.LocalAddr().(*net.UDPAddr).AddrPort()
			want[gsoFrom] = make([]int, per)
			for i := range want[gsoFrom] {
				want[gsoFrom][i] = i
			}

			r := NewCoalescedReader(0)
			got := map[netip.AddrPort][]int{}
			_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
			for n := 0; n < 4*per; n++ {
				d, from, _, err := r.Next(rx)
				if err != nil {
					t.Fatalf("after %d datagrams: %v", n, err)
				}
				if len(d) < 4 {
					t.Fatalf("a %d-byte datagram", len(d))
				}
				from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
				got[from] = append(got[from], int(binary.BigEndian.Uint32(d)))
			}
			for from, seq := range want {
				f := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
				if !slices.Equal(got[f], seq) {
					t.Errorf("from %s: got %d datagrams %v…, want %d in order", f, len(got[f]), got[f][:min(5, len(got[f]))], len(seq))
				}
			}
			if r.reads.Load() >= r.datagrams.Load()/2 {
				t.Errorf("%d system calls for %d datagrams: not batched", r.reads.Load(), r.datagrams.Load())
			}

			_ = rx.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, _, _, err := r.Next(rx); !os.IsTimeout(err) {
				t.Fatalf("read past the deadline: %v, want a timeout", err)
			}
			_ = rx.SetReadDeadline(time.Time{})
			done := make(chan error, 1)
			go func() { _, _, _, err := r.Next(rx); done <- err }()
			time.Sleep(20 * time.Millisecond)
			_ = rx.Close()
			if err := testkit.Returned(t, done, 2*time.Second, "Close ending a waiting read"); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read on a closed socket: %v, want net.ErrClosed", err)
			}
		})
	}
}

// TestCoalescedReaderAllocatesNothing: a publisher that does not coalesce
// costs a recvmmsg a datagram or two; none of them may allocate (the
// socket's RawConn and the bound call are made once).
func TestCoalescedReaderAllocatesNothing(t *testing.T) {
	rx, tx := testkit.LoopbackUDP(t, "udp4"), testkit.LoopbackUDP(t, "udp4")
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	r := NewCoalescedReader(0)
	p := datagram(1, 1200)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := tx.WriteToUDPAddrPort(p, to); err != nil {
			t.Fatal(err)
		}
		d, _, _, err := r.Next(rx)
		if err != nil || len(d) != len(p) {
			t.Fatalf("read %d bytes, %v; want %d", len(d), err, len(p))
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations a datagram sent and read, want 0", allocs)
	}
	if reads, _ := r.Stats(); reads < 200 {
		t.Fatalf("%d reads for 201 datagrams sent one at a time: the test did not read each", reads)
	}
}
