// Package rtctest gives the tests of the layers above the transport
// (whip/client, whip/egress, whip, whep) a real transport on loopback.
// The transport's own tests cannot import it (it imports the transport)
// and keep a copy of New in their kit.
package rtctest

import (
	"testing"
	"time"

	"whipgate/internal/testkit"
	"whipgate/whip/rtc"
)

// New is a transport on 127.0.0.1 with quick consent timeouts, closed
// when the test ends.
func New(t testing.TB) *rtc.Transport {
	t.Helper()
	tr, err := rtc.New(rtc.Config{UDPListen: "127.0.0.1:0", DisconnectedTimeout: 1500 * time.Millisecond, FailedTimeout: 4 * time.Second}, testkit.PionLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}
