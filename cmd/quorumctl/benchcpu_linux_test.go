package main

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestPidCPU reads this test's own process from /proc after it burned some
// CPU: the reading grew, and by what getrusage says it grew (the same
// kernel accounts, in clock ticks: a wrong tick rate would be off by a
// factor).
func TestPidCPU(t *testing.T) {
	pid := os.Getpid()
	c0, s0, err := pidCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	r0 := processCPU()
	h := sha256.Sum256(nil)
	for processCPU()-r0 < 300*time.Millisecond { // burn 300 ms of CPU, however long that takes
		for range 1000 {
			h = sha256.Sum256(h[:])
		}
	}
	c1, s1, err := pidCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	r1 := processCPU()
	if s1 != s0 || s0 == 0 {
		t.Errorf("start time %d then %d", s0, s1)
	}
	dp, dr := c1-c0, r1-r0
	if dp <= 0 {
		t.Fatalf("/proc CPU did not grow: %s then %s", c0, c1)
	}
	if diff := (dp - dr).Abs(); diff > 50*time.Millisecond+dr/10 {
		t.Errorf("/proc says %s of CPU, getrusage %s (clock ticks %d/s)", dp, dr, clockTicks())
	}

	// A process that has exited (and been waited for) cannot be read.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	if _, _, err := pidCPU(cmd.Process.Pid); err == nil {
		t.Errorf("read the CPU of exited process %d", cmd.Process.Pid)
	}
}

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 50
	// (fields 14, 15), starttime 12345 (field 22).
	line := "4242 (a) b (c) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 12345 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	cpu, start, err := parseProcStat(line, 100)
	if err != nil || cpu != 3*time.Second || start != 12345 {
		t.Errorf("parseProcStat = %s, %d, %v; want 3s, 12345", cpu, start, err)
	}
	if cpu, _, _ := parseProcStat(line, 1000); cpu != 300*time.Millisecond {
		t.Errorf("at 1000 Hz: %s, want 300ms", cpu)
	}
	for _, bad := range []string{"", "4242 (x) R 1 2 3", "4242 (x) R 1 4242 4242 0 -1 4194304 100 0 0 0 2x0 50 0 0 20 0 9 0 12345 1 2"} {
		if _, _, err := parseProcStat(bad, 100); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
	if hz := clockTicks(); hz != 100 {
		t.Logf("clock ticks: %d/s", hz) // not an error: the kernel says so
	}
}
