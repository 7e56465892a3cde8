package testkit

import (
	"net"
	"strings"
	"testing"

	"github.com/pion/turn/v4"
	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc/pionlog"
)

// TURN runs a pion TURN server on 127.0.0.1 over UDP and TCP and
// returns the Link header lines for both, and a count of authenticated
// requests by the transport they came over ("udp", "tcp").
func TURN(t *testing.T) (udpLink, tcpLink string, auths func(network string) int) {
	t.Helper()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const realm = "whipgate.test"
	key := turn.GenerateAuthKey("user", realm, "pass")
	gen := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"}
	}
	var udpAuths, tcpAuths Counter
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         realm,
		LoggerFactory: pionlog.Factory{Log: PionLog(t)},
		AuthHandler: func(username, _ string, src net.Addr) ([]byte, bool) {
			if src.Network() == "tcp" {
				tcpAuths.Add()
			} else {
				udpAuths.Add()
			}
			return key, username == "user"
		},
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: udp, RelayAddressGenerator: gen()}},
		ListenerConfigs:   []turn.ListenerConfig{{Listener: tcp, RelayAddressGenerator: gen()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	udpLink = "<turn:" + udp.LocalAddr().String() + "?transport=udp>; rel=\"ice-server\"; username=\"user\"; credential=\"pass\""
	tcpLink = "<turn:" + tcp.Addr().String() + "?transport=tcp>; rel=\"ice-server\"; username=\"user\"; credential=\"pass\""
	return udpLink, tcpLink, func(network string) int {
		if network == "tcp" {
			return tcpAuths.Get()
		}
		return udpAuths.Get()
	}
}

// TURNICEServers is the server of a link TURN returned, in pion's form.
func TURNICEServers(link string) []webrtc.ICEServer {
	url, _, _ := strings.Cut(strings.TrimPrefix(link, "<"), ">")
	return []webrtc.ICEServer{{URLs: []string{url}, Username: "user", Credential: "pass"}}
}
