package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Where a measured run's CPU goes: the bench reads the CPU time of every
// process of the quorum it was given (-pids) and of itself when the
// measured window opens and when it closes, and divides by the operations
// that succeeded. Wall time alone cannot say whether the daemons, the relay
// or the bench client burns the cores.

// benchProc is a process whose CPU the bench accounts: names d0, d1, … are
// daemons, "relay" the relay, any other name is listed as it is.
type benchProc struct {
	Name string
	PID  int
}

// benchClientName names the bench's own process in the accounts.
const benchClientName = "bench client"

var (
	benchProcNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)
	daemonNameRE    = regexp.MustCompile(`^d[0-9]+$`)
)

// parseBenchProcs reads -pids: name=pid pairs, comma-separated.
func parseBenchProcs(s string) ([]benchProc, error) {
	var procs []benchProc
	seen := map[string]bool{}
	for _, item := range splitList(s) {
		name, p, ok := strings.Cut(item, "=")
		pid, err := strconv.Atoi(p)
		switch {
		case !ok || !benchProcNameRE.MatchString(name):
			return nil, usagef("-pids: %q is not name=pid (name of letters, digits, _ . -)", item)
		case err != nil || pid < 1:
			return nil, usagef("-pids: %q: the pid is not a positive number", item)
		case seen[name]:
			return nil, usagef("-pids: %s named twice", name)
		}
		seen[name] = true
		procs = append(procs, benchProc{Name: name, PID: pid})
	}
	return procs, nil
}

// cpuSample is the CPU time so far of each process (aligned with the
// procs sampled) and of the bench itself.
type cpuSample struct {
	at    time.Time
	procs []procTimes
	self  time.Duration
}

// procTimes is one process's CPU time so far and its start time, which
// tells a pid reused by another process apart.
type procTimes struct {
	cpu   time.Duration
	start uint64
	err   error
}

// sampleCPU reads the CPU time of procs and of this process.
func sampleCPU(procs []benchProc) cpuSample {
	s := cpuSample{at: time.Now(), procs: make([]procTimes, len(procs)), self: processCPU()}
	for i, p := range procs {
		s.procs[i].cpu, s.procs[i].start, s.procs[i].err = pidCPU(p.PID)
	}
	return s
}

// cpuUsage is the CPU each process spent in a measured window.
type cpuUsage struct {
	Ops    int           // operations that succeeded in the window
	Window time.Duration // its wall time
	Cores  int
	Procs  []procCPU // the processes given, then the bench client
}

// procCPU is one process's CPU in the window; Unknown when it could not be
// read at both ends (gone, or its pid taken by another process).
type procCPU struct {
	Name    string
	CPU     time.Duration
	Unknown bool
}

// cpuBetween is what each process spent from a to b, for ops operations;
// nil where process CPU cannot be read (not Linux) or nothing succeeded.
func cpuBetween(procs []benchProc, a, b cpuSample, ops, cores int) *cpuUsage {
	if !procCPUSupported || ops == 0 || a.at.IsZero() {
		return nil
	}
	u := &cpuUsage{Ops: ops, Window: b.at.Sub(a.at), Cores: cores}
	for i, p := range procs {
		pa, pb := a.procs[i], b.procs[i]
		if pa.err != nil || pb.err != nil || pa.start != pb.start || pb.cpu < pa.cpu {
			u.Procs = append(u.Procs, procCPU{Name: p.Name, Unknown: true})
			continue
		}
		u.Procs = append(u.Procs, procCPU{Name: p.Name, CPU: pb.cpu - pa.cpu})
	}
	u.Procs = append(u.Procs, procCPU{Name: benchClientName, CPU: b.self - a.self})
	return u
}

// perOp is d per operation.
func (u *cpuUsage) perOp(d time.Duration) time.Duration { return d / time.Duration(u.Ops) }

// summary is the breakdown per operation: the daemons (together, then each),
// the relay, any other process, the bench client, the total, and what the
// cores offered per operation in the window (cores × window ÷ ops): the
// total approaches it when the run is CPU-bound, and the rest went to
// other work on the machine or to idling.
func (u *cpuUsage) summary() string {
	var daemons, total time.Duration
	var each, others []string
	var unknown bool
	val := func(p procCPU) string {
		if p.Unknown {
			unknown = true
			return "?"
		}
		total += p.CPU
		return fmt.Sprintf("%.2f", msf(u.perOp(p.CPU)))
	}
	for _, p := range u.Procs {
		if daemonNameRE.MatchString(p.Name) {
			each = append(each, p.Name+" "+val(p))
			daemons += p.CPU
		} else {
			others = append(others, p.Name+" "+val(p)+" ms")
		}
	}
	var parts []string
	if len(each) > 0 {
		parts = append(parts, fmt.Sprintf("daemons %s (%s)", ms(u.perOp(daemons)), strings.Join(each, ", ")))
	}
	parts = append(parts, others...)
	t := "total " + ms(u.perOp(total))
	if unknown {
		t = "total of those known " + ms(u.perOp(total))
	}
	parts = append(parts, t)
	offered := time.Duration(u.Cores) * u.Window / time.Duration(u.Ops)
	return fmt.Sprintf("%s of the %d cores' %s", strings.Join(parts, ", "), u.Cores, ms(offered))
}

// MarshalJSON reports the CPU per operation of each process in
// milliseconds (null where unknown).
func (u *cpuUsage) MarshalJSON() ([]byte, error) {
	per := map[string]*float64{}
	for _, p := range u.Procs {
		if p.Unknown {
			per[p.Name] = nil
			continue
		}
		v := msf(u.perOp(p.CPU))
		per[p.Name] = &v
	}
	return json.Marshal(map[string]any{"ops": u.Ops, "window_s": u.Window.Seconds(), "cores": u.Cores,
		"per_op_ms": per})
}
