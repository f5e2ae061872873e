// Package sd is berthd's systemd glue: readiness and watchdog notifications
// for a Type=notify unit. Not running under systemd is a normal answer, not
// an error: every call then does nothing.
package sd

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Ready tells systemd that berthd is up (READY=1) with a status line.
func Ready(status string) {
	daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS="+status)
}

// Stopping tells systemd that berthd is shutting down.
func Stopping() {
	daemon.SdNotify(false, daemon.SdNotifyStopping)
}

// Watchdog pings systemd's watchdog at half its interval until ctx ends;
// it returns at once when the unit has no watchdog.
func Watchdog(ctx context.Context, log *slog.Logger) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	log.Info("systemd watchdog enabled", "interval", interval)
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		case <-ctx.Done():
			return
		}
	}
}
