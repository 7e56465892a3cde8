// Package pionlog bridges pion's leveled logging to log/slog, once for all
// of pion: every pion API whipgate builds (the transport's, the egress
// sessions', the bench's and the tests' peers) logs through Factory.
//
// It imports nothing of whipgate.
package pionlog
