package cmd

import (
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// serviceManager tells systemd (Type=notify) how the service is doing:
// ready once it serves, reloading, stopping, and the watchdog's keep-alive
// while it is healthy. Outside systemd (no NOTIFY_SOCKET) every call does
// nothing.
type serviceManager struct {
	log *slog.Logger
}

// newServiceManager reads NOTIFY_SOCKET and WATCHDOG_USEC from the
// process environment, where systemd puts them (go-systemd reads them
// there).
func newServiceManager(log *slog.Logger) *serviceManager {
	return &serviceManager{log: log}
}

func (m *serviceManager) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		m.log.Warn("cannot notify systemd", "state", state, "err", err)
	}
}

// ready says the service serves (after start and after each reload).
func (m *serviceManager) ready() { m.notify(daemon.SdNotifyReady) }

// reloading says a reload has begun.
func (m *serviceManager) reloading() { m.notify(daemon.SdNotifyReloading) }

// stopping says a graceful stop has begun.
func (m *serviceManager) stopping() { m.notify(daemon.SdNotifyStopping) }

// watchdog keeps systemd's watchdog fed at a third of its interval for as
// long as healthy says so: a process that hangs (a deadlocked hub, a stuck
// registry) stops feeding it and is restarted like one that died. It
// returns the function that stops it.
func (m *serviceManager) watchdog(healthy func(time.Duration) bool) (stop func()) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		m.log.Warn("systemd watchdog settings unreadable", "err", err)
	}
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if healthy(every / 3) {
					m.notify(daemon.SdNotifyWatchdog)
				} else {
					m.log.Error("not healthy: the systemd watchdog is left to expire")
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// healthy reports whether the hub and the session registry answer within
// limit: the locks every request takes are not stuck.
func (a *App) healthy(limit time.Duration) bool {
	ok := make(chan struct{})
	go func() {
		a.hub.Streams()
		a.sessions.List()
		close(ok)
	}()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-ok:
		return true
	case <-t.C:
		return false
	}
}
