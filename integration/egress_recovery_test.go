package integration

import (
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"whipgate/certs/certstest"
	"whipgate/cmd"
	"whipgate/whip/egress"
)

// freeUDPPort is a UDP port on 127.0.0.1 free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// An egress to a whipgate that is killed (SIGKILL: no DELETE, no DTLS
// close, only silence) and started again on the same ports after 3 s is
// shown reconnecting within seconds and connected again soon after the
// target is back, and the target's viewers see media again. The times are
// logged; the bounds are generous (whipgate bench measures).
func TestEgressBackAfterTargetKilled(t *testing.T) {
	bin := buildWhipgate(t)
	httpPort, udpPort := certstest.FreePort(t), freeUDPPort(t)
	args := []string{"-listen", fmt.Sprintf("127.0.0.1:%d", httpPort), "-udp", fmt.Sprintf("127.0.0.1:%d", udpPort), "-no-test-source"}
	target := startWhipgateProcess(t, "target", bin, args...)
	box := startGateway(t, func(c *cmd.Config) {
		c.Egress = []egress.Config{{ID: "sfu", Stream: "test", URL: target.url + "/whip/relay", Layers: []string{"preview"}}}
	})
	waitEgress(t, box, "sfu", egress.StateConnected, 15*time.Second)
	// The target runs a while, as a real one does, and its receiver
	// reports arrive: their silence is what tells a crash.
	time.Sleep(3 * time.Second)

	if err := target.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-target.done
	killed := time.Now()
	waitEgress(t, box, "sfu", egress.StateReconnecting, 10*time.Second)
	t.Logf("egress shown reconnecting %v after the kill", time.Since(killed).Round(time.Millisecond))
	time.Sleep(3*time.Second - time.Since(killed))

	again := startWhipgateProcess(t, "restarted target", bin, args...)
	backAt := time.Now()
	waitEgress(t, box, "sfu", egress.StateConnected, 15*time.Second)
	t.Logf("egress connected again %v after the target was back", time.Since(backAt).Round(time.Millisecond))
	v := watch(t, again.url+"/whep/relay")
	v.waitFrames(10, 15*time.Second)
}
