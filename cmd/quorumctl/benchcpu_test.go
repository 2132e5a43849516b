package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseBenchProcs(t *testing.T) {
	got, err := parseBenchProcs("relay=12, d0=34,d1=56,vault=7")
	if err != nil {
		t.Fatal(err)
	}
	want := []benchProc{{"relay", 12}, {"d0", 34}, {"d1", 56}, {"vault", 7}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"relay", "relay=", "=12", "relay=0", "relay=-3", "relay=x", "d0=1,d0=2", "bench client=3", "a/b=4"} {
		if _, err := parseBenchProcs(bad); err == nil {
			t.Errorf("-pids %q accepted", bad)
		}
	}
}

// TestCPUAccounts: the window's CPU per operation, process by process, in
// the line under a run's ratio line; a process not read at both ends, or
// whose pid another process took, is unknown, never a wrong figure.
func TestCPUAccounts(t *testing.T) {
	procs := []benchProc{{"relay", 10}, {"d0", 11}, {"d1", 12}, {"d2", 13}}
	at := time.Unix(1000, 0)
	a := cpuSample{at: at, self: 1 * time.Second, procs: []procTimes{
		{cpu: 5 * time.Second, start: 1}, {cpu: 7 * time.Second, start: 2}, {cpu: 7 * time.Second, start: 3}, {cpu: 2 * time.Second, start: 4}}}
	// 1000 signatures in 10 s on 2 cores: the cores offered 20 ms each.
	b := cpuSample{at: at.Add(10 * time.Second), self: 1*time.Second + 800*time.Millisecond, procs: []procTimes{
		{cpu: 5*time.Second + 900*time.Millisecond, start: 1}, {cpu: 9 * time.Second, start: 2},
		{cpu: 9*time.Second + 100*time.Millisecond, start: 3}, {cpu: 2 * time.Second, start: 4}}}
	u := cpuBetween(procs, a, b, 1000, 2)
	if !procCPUSupported {
		if u != nil {
			t.Fatal("CPU accounts where process CPU cannot be read")
		}
		t.Skip("process CPU is read on Linux only")
	}
	want := "daemons 4.10 ms (d0 2.00, d1 2.10, d2 0.00), relay 0.90 ms, bench client 0.80 ms, total 5.80 ms of the 2 cores' 20.00 ms"
	if got := u.summary(); got != want {
		t.Errorf("summary\n %s\nwant\n %s", got, want)
	}

	f := &floorReport{N: 3, Signers: 2, SignCPU: 1500 * time.Microsecond, HSMOpen: 50 * time.Microsecond,
		ImportCPU: 3 * time.Millisecond, HSMSeal: 40 * time.Microsecond}
	all := &benchAll{Floor: f, Runs: []*benchReport{
		{Mode: "import", Concurrency: 1, CPU: u, Phases: map[string]latencyStats{"ceremony": {P50: time.Millisecond}}},
		{Mode: "sign", Concurrency: 1},
		{Mode: "sign", Concurrency: 32, Throughput: 100, CPU: u},
	}}
	lines := all.lines()
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 4 ratio lines and 2 CPU lines:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	ratios := all.ratioLines()
	for i, j := range []int{0, 1, 3, 4} { // the ratio lines unchanged, in order
		if lines[j] != ratios[i] {
			t.Errorf("line %d %q, want the ratio line %q", j, lines[j], ratios[i])
		}
	}
	if want := "#   import-whole C=1 CPU per import: " + want + "; floor CPU 3.24 ms"; lines[2] != want {
		t.Errorf("import CPU line\n %s\nwant\n %s", lines[2], want)
	}
	if want := "#   sign C=32 CPU per signature: " + want + "; floor CPU 1.60 ms"; lines[5] != want {
		t.Errorf("sign CPU line\n %s\nwant\n %s", lines[5], want)
	}

	js, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Ops   int                 `json:"ops"`
		PerOp map[string]*float64 `json:"per_op_ms"`
	}
	if err := json.Unmarshal(js, &j); err != nil {
		t.Fatal(err)
	}
	if j.Ops != 1000 || j.PerOp["d1"] == nil || *j.PerOp["d1"] != 2.1 || *j.PerOp[benchClientName] != 0.8 {
		t.Errorf("JSON %s", js)
	}

	// d1 gone at the end, d2's pid now another process's.
	b.procs[2] = procTimes{err: errors.New("gone")}
	b.procs[3].start = 99
	u = cpuBetween(procs, a, b, 1000, 2)
	want = "daemons 2.00 ms (d0 2.00, d1 ?, d2 ?), relay 0.90 ms, bench client 0.80 ms, total of those known 3.70 ms of the 2 cores' 20.00 ms"
	if got := u.summary(); got != want {
		t.Errorf("summary\n %s\nwant\n %s", got, want)
	}
	if js, _ := json.Marshal(u); !strings.Contains(string(js), `"d1":null`) {
		t.Errorf("JSON %s: an unknown process should be null", js)
	}

	// Nothing succeeded, or the window never opened: no accounts.
	if cpuBetween(procs, a, b, 0, 2) != nil || cpuBetween(procs, cpuSample{}, b, 10, 2) != nil {
		t.Error("accounts without operations or without a window")
	}
}
