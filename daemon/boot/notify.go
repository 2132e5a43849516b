package boot

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// sdNotify sends state to systemd's notification socket (Type=notify
// units); without NOTIFY_SOCKET it does nothing. An abstract socket is
// written with a leading '@'.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// watchdogInterval returns how often to ping systemd's watchdog (half its
// timeout), or 0 when the unit has no WatchdogSec= or the watchdog is meant
// for another process.
func watchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// watchdog pings systemd until ctx ends. It proves the process is alive and
// scheduling, not that the HSM or Vault are reachable: a dependency outage
// is /readyz's to report, and restarting the daemon would not cure it.
func watchdog(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := sdNotify("WATCHDOG=1"); err != nil {
				log.Warn("sd_notify watchdog", "error", err.Error())
			}
		}
	}
}
