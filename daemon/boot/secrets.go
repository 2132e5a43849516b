package boot

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"syscall"

	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/mpc/secp"
)

// lockSecrets makes the locked-memory arena that holds the secrets of calls
// in flight (server.locked_secret_slots). It fails closed: when the memory
// cannot be locked the daemon does not start, rather than run with
// swappable secrets. 0 turns locking off, loudly.
func lockSecrets(slots int, log *slog.Logger) (*secmem.Arena, error) {
	if name, why := secp.Backend(); why != nil {
		log.Warn("secret curve arithmetic falls back to pure Go (constant time, 2-4x slower): libsecp256k1's secret backend is off", "backend", name, "reason", why.Error())
	} else {
		log.Info("secret curve arithmetic", "backend", name)
	}
	if slots == 0 {
		log.Warn("secrets are NOT locked in memory: server.locked_secret_slots is 0, so keys and shares of calls in flight may be written to swap; set it (default 512) unless the host has no swap at all",
			"locked_secret_slots", 0)
		return nil, nil
	}
	a, err := secmem.New(slots)
	if err != nil {
		var le *secmem.LockError
		if errors.As(err, &le) && (errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EAGAIN)) {
			limit := "unlimited"
			if le.Limit != secmem.Unlimited {
				limit = strconv.FormatUint(le.Limit, 10) + " bytes"
			}
			return nil, fmt.Errorf("memlock limit too small: need %d bytes, RLIMIT_MEMLOCK is %s — raise LimitMEMLOCK= (ulimit -l) or lower server.locked_secret_slots: %w",
				le.Need, limit, err)
		}
		return nil, fmt.Errorf("locking memory for secrets: %w", err)
	}
	log.Info("secrets locked in memory", "locked_secret_slots", slots, "locked_bytes", a.Size())
	return a, nil
}
