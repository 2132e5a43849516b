package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// procCPUSupported: /proc/PID/stat gives any process's CPU time.
const procCPUSupported = true

// pidCPU is the user + system CPU time so far of process pid (all its
// threads) and its start time (in clock ticks since boot), from
// /proc/PID/stat.
func pidCPU(pid int) (cpu time.Duration, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseProcStat(string(b), clockTicks())
}

// parseProcStat reads utime, stime and starttime (fields 14, 15 and 22,
// in ticks of hz) from a /proc/PID/stat line. The command name (field 2)
// may hold spaces and parentheses: the fields are counted from its last ')'.
func parseProcStat(line string, hz int64) (cpu time.Duration, start uint64, err error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3, the state
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 20", len(f))
	}
	var v [3]uint64
	for k, field := range []int{14, 15, 22} {
		if v[k], err = strconv.ParseUint(f[field-3], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc stat field %d: %w", field, err)
		}
	}
	ticks := v[0] + v[1]
	return time.Duration(ticks) * time.Second / time.Duration(hz), v[2], nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: the kernel's
// AT_CLKTCK from the auxiliary vector (what sysconf(_SC_CLK_TCK) returns),
// else 100, its value on every architecture Go runs on.
var clockTicks = sync.OnceValue(func() int64 {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	word := int(unsafe.Sizeof(uintptr(0)))
	get := func(p []byte) uint64 {
		if word == 8 {
			return binary.NativeEndian.Uint64(p)
		}
		return uint64(binary.NativeEndian.Uint32(p))
	}
	for ; len(b) >= 2*word; b = b[2*word:] {
		if k, v := get(b), get(b[word:]); k == atClkTck && v > 0 && v < 1e6 {
			return int64(v)
		}
	}
	return 100
})
