//go:build !linux

package udp

import "net"

// Without UDP GSO no message carries a segment size.
const segmentCmsgSpace = 0

func probeGSO(*net.UDPConn) bool { return false }

// putSegmentCmsg is never called: probeGSO says there is no GSO.
func putSegmentCmsg([]byte, uint16) {}

// SegmentOOB is nil: there is no UDP GSO here.
func SegmentOOB(uint16) []byte { return nil }
