package pionlog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/pion/logging"
)

// levelTrace sits below slog's Debug for pion's trace output.
const levelTrace = slog.LevelDebug - 4

// Factory is a pion logging.LoggerFactory that writes to Log.
type Factory struct {
	Log *slog.Logger
	// BufferFull, if set, is called for each packet pion reports dropping
	// at a full receive buffer, whatever level the log shows: pion says so
	// only in an Info line, which Log shows at Debug.
	BufferFull func()
}

// NewLogger implements logging.LoggerFactory.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.Log.With("pion", scope), full: f.BufferFull}
}

type pionLogger struct {
	log  *slog.Logger
	full func()
}

// drop calls the BufferFull hook if an Info or Warn line reports a drop
// (pion says it in either, some in the format, some in an argument).
func (l pionLogger) drop(format string, args ...any) {
	if l.full != nil && IsBufferFull(fmt.Sprintf(format, args...)) {
		l.full()
	}
}

// IsBufferFull reports whether a pion log message says a packet was
// dropped at a full buffer.
func IsBufferFull(msg string) bool {
	return strings.Contains(msg, "buffer is full") || strings.Contains(msg, "Buffer is full")
}

func (l pionLogger) logf(level slog.Level, format string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

func (l pionLogger) Trace(msg string)                  { l.logf(levelTrace, "%s", msg) }
func (l pionLogger) Tracef(format string, args ...any) { l.logf(levelTrace, format, args...) }
func (l pionLogger) Debug(msg string)                  { l.logf(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }

// pion's Info is chatter for an operator (its congestion controller logs
// tens of lines a second per egress session, ICE two per retry): debug.
func (l pionLogger) Info(msg string) { l.drop("%s", msg); l.logf(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Infof(format string, args ...any) {
	l.drop(format, args...)
	l.logf(slog.LevelDebug, format, args...)
}
func (l pionLogger) Warn(msg string) { l.drop("%s", msg); l.logf(slog.LevelWarn, "%s", msg) }
func (l pionLogger) Warnf(format string, args ...any) {
	l.drop(format, args...)
	l.logf(slog.LevelWarn, format, args...)
}
func (l pionLogger) Error(msg string)                  { l.logf(slog.LevelError, "%s", msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args...) }

// Interface guards
var _ logging.LoggerFactory = Factory{}
