package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
)

func TestSummarize(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	seq := func(n int) []time.Duration { // n, n-1, ..., 1 ms: unsorted input
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(n-i) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name               string
		in                 []time.Duration
		p50, p95, p99, max time.Duration
		mean               time.Duration
		count              int
	}{
		{"one sample", ms(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 1},
		{"1..100", seq(100), 50 * time.Millisecond, 95 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond, 50500 * time.Microsecond, 100},
		{"1..10", seq(10), 5 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 5500 * time.Microsecond, 10},
		{"outlier", ms(1, 1, 1, 1, 1, 1, 1, 1, 1, 1000), time.Millisecond, 1000 * time.Millisecond, 1000 * time.Millisecond, 1000 * time.Millisecond, 100900 * time.Microsecond, 10},
		{"empty", nil, 0, 0, 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := summarize(tc.in)
			if s.Count != tc.count || s.P50 != tc.p50 || s.P95 != tc.p95 || s.P99 != tc.p99 || s.Max != tc.max || s.Mean != tc.mean {
				t.Errorf("summarize = %+v, want p50 %v p95 %v p99 %v max %v mean %v", s, tc.p50, tc.p95, tc.p99, tc.max, tc.mean)
			}
		})
	}
}

func TestBenchLoop(t *testing.T) {
	var started, inWarmup, opened atomic.Int64
	begin := time.Now()
	warmup, d := 100*time.Millisecond, 300*time.Millisecond
	samples, elapsed := benchLoop(context.Background(), 4, warmup, d, time.Second, func(ctx context.Context) benchSample {
		started.Add(1)
		if time.Since(begin) < warmup {
			inWarmup.Add(1)
		}
		time.Sleep(10 * time.Millisecond)
		if _, ok := ctx.Deadline(); !ok {
			return benchSample{err: errors.New("op has no deadline")}
		}
		return benchSample{total: 10 * time.Millisecond}
	}, func() {
		if time.Since(begin) < warmup {
			t.Error("the window opened during the warm-up")
		}
		opened.Add(1)
	})
	total := time.Since(begin)
	if opened.Load() != 1 {
		t.Errorf("the window opened %d times", opened.Load())
	}
	if total > warmup+d+2*time.Second { // one 10 ms op may run past the end; the slack is for a loaded machine
		t.Errorf("ran %s for %s + %s", total, warmup, d)
	}
	if got, want := int64(len(samples)), started.Load()-inWarmup.Load(); got > want || got < want-4 {
		t.Errorf("%d samples for %d ops started, %d in the warm-up", got, started.Load(), inWarmup.Load())
	}
	// 4 workers × 10 ms ops for 300 ms ≈ 120 samples; a loaded machine
	// sleeps longer.
	if len(samples) < 10 {
		t.Errorf("only %d samples", len(samples))
	}
	if elapsed < d-20*time.Millisecond || elapsed > d+2*time.Second {
		t.Errorf("elapsed %s, want about %s", elapsed, d)
	}
	for _, s := range samples {
		if s.err != nil {
			t.Fatal(s.err)
		}
	}
}

func TestBenchReportFill(t *testing.T) {
	boom := &client.APIError{Status: 400, ErrType: "executor_result", ErrMsg: "x"}
	samples := []benchSample{
		{total: 2 * time.Millisecond, phases: map[string]time.Duration{"ceremony": time.Millisecond}},
		{total: 4 * time.Millisecond, phases: map[string]time.Duration{"ceremony": 3 * time.Millisecond}},
		{err: boom},
		{err: context.DeadlineExceeded},
	}
	var r benchReport
	r.fill(samples, 2*time.Second)
	if r.OK != 2 || r.Failed != 2 || r.Throughput != 1 || r.Failures["executor_result"] != 1 || r.Failures["timeout"] != 1 {
		t.Errorf("report %+v", r)
	}
	if r.Latency.P50 != 2*time.Millisecond || r.Phases["ceremony"].Max != 3*time.Millisecond || r.FirstError != boom.Error() {
		t.Errorf("report %+v", r)
	}
}

// TestBenchCommand runs both modes briefly against a fake quorum and reads
// the JSON report.
func TestBenchCommand(t *testing.T) {
	for _, mode := range []string{"import", "sign"} {
		t.Run(mode, func(t *testing.T) {
			q := newFakeQuorum(t, 3)
			env := map[string]string{"QUORUMCTL_KEYS": q.keys()}
			code, stdout, stderr := runCLI(t, env, "bench", mode, "-daemons", q.urls(), "-c", "4", "-d", "1s", "-warmup", "0s", "-json")
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var r struct {
				Mode       string                        `json:"mode"`
				OK         int                           `json:"ok"`
				Throughput float64                       `json:"throughput_per_s"`
				Latency    map[string]float64            `json:"latency"`
				Phases     map[string]map[string]float64 `json:"phases"`
				Threshold  int                           `json:"threshold"`
				Signers    int                           `json:"signers"`
			}
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatalf("JSON report: %v\n%s", err, stdout)
			}
			if r.Mode != mode || r.OK == 0 || r.Throughput <= 0 || r.Latency["p50_ms"] <= 0 || r.Latency["p99_ms"] < r.Latency["p50_ms"] {
				t.Errorf("report %s", stdout)
			}
			if _, ok := r.Phases["ceremony"]; !ok {
				t.Errorf("no ceremony phase in %s", stdout)
			}
			if mode == "sign" && (r.Signers != 2 || r.Threshold != 2) {
				t.Errorf("sign with %d signers of t=%d, want the first t=2", r.Signers, r.Threshold)
			}
		})
	}

	t.Run("human output", func(t *testing.T) {
		q := newFakeQuorum(t, 3)
		code, stdout, stderr := runCLI(t, map[string]string{"QUORUMCTL_KEYS": q.keys()}, "bench", "import",
			"-daemons", q.urls(), "-c", "2", "-d", "500ms", "-warmup", "0s")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, want := range []string{"throughput", "imports/s", "latency (whole import): p50", "p95", "p99", "ceremony:", "CPUs"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, stdout)
			}
		}
	})
}

// TestBenchCPUAccounts: with -pids the report says what CPU each process
// spent per operation in the measured window. The fake quorum's daemons
// run in this test's process, which -pids names as daemon 0.
func TestBenchCPUAccounts(t *testing.T) {
	if !procCPUSupported {
		t.Skip("process CPU is read on Linux only")
	}
	q := newFakeQuorum(t, 3)
	env := map[string]string{"QUORUMCTL_KEYS": q.keys()}
	pids := "d0=" + strconv.Itoa(os.Getpid())
	code, stdout, stderr := runCLI(t, env, "bench", "sign", "-daemons", q.urls(), "-c", "2", "-d", "1s", "-warmup", "100ms", "-pids", pids, "-json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		OK  int `json:"ok"`
		CPU struct {
			Ops     int                 `json:"ops"`
			WindowS float64             `json:"window_s"`
			PerOp   map[string]*float64 `json:"per_op_ms"`
		} `json:"cpu"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, stdout)
	}
	d0, self := r.CPU.PerOp["d0"], r.CPU.PerOp[benchClientName]
	if r.CPU.Ops != r.OK || r.OK == 0 || r.CPU.WindowS <= 0 || d0 == nil || self == nil || *self <= 0 || len(r.CPU.PerOp) != 2 {
		t.Errorf("CPU accounts %s", stdout)
	}

	code, stdout, stderr = runCLI(t, env, "bench", "import", "-daemons", q.urls(), "-c", "1", "-d", "300ms", "-warmup", "0s", "-pids", pids)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !regexp.MustCompile(`(?m)^CPU per import: daemons [0-9.]+ ms \(d0 [0-9.]+\), bench client [0-9.]+ ms, total [0-9.]+ ms of the [0-9]+ cores' [0-9.]+ ms$`).MatchString(stdout) {
		t.Errorf("no CPU line in\n%s", stdout)
	}
}

func TestBenchRefusals(t *testing.T) {
	q := newFakeQuorum(t, 3)
	tests := []struct {
		name     string
		args     []string
		want     int
		inStderr string
	}{
		{"remote daemon", []string{"import", "-daemons", "http://10.1.2.3:8080,http://10.1.2.4:8080", "-keys", "k"}, exitFailure, "loopback"},
		{"concurrency 0", []string{"import", "-daemons", q.urls(), "-keys", q.keys(), "-c", "0"}, exitUsage, "-c 0"},
		{"concurrency too high", []string{"import", "-daemons", q.urls(), "-keys", q.keys(), "-c", "5000"}, exitUsage, "-c 5000"},
		{"bad -pids", []string{"sign", "-daemons", q.urls(), "-keys", q.keys(), "-pids", "d0:12"}, exitUsage, "name=pid"},
		{"duration too long", []string{"sign", "-daemons", q.urls(), "-keys", q.keys(), "-d", "1h"}, exitUsage, "-d 1h"},
		{"unknown mode", []string{"keygen"}, exitUsage, "bench import|sign"},
		{"every op fails", []string{"import", "-daemons", q.urls(), "-keys", "0000000000000000.wrong", "-d", "100ms", "-warmup", "0s", "-c", "1"},
			exitFailure, "access_denied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, append([]string{"bench"}, tc.args...)...)
			if code != tc.want || !strings.Contains(stderr, tc.inStderr) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tc.want, stderr, tc.inStderr)
			}
		})
	}
}
