package whip

import (
	"testing"
	"unsafe"

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
