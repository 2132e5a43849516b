package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
)

// Bench bounds: the load is meant for a local quorum, not a stress tool
// pointed at someone else's servers.
const (
	maxBenchConcurrency = 1024
	maxBenchDuration    = 10 * time.Minute
	maxBenchWarmup      = time.Minute
)

// latencyStats summarizes one latency series (nearest-rank percentiles).
type latencyStats struct {
	Count int           `json:"count"`
	P50   time.Duration `json:"-"`
	P95   time.Duration `json:"-"`
	P99   time.Duration `json:"-"`
	Max   time.Duration `json:"-"`
	Mean  time.Duration `json:"-"`
}

// MarshalJSON reports durations in milliseconds.
func (s latencyStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"count": s.Count, "p50_ms": msf(s.P50), "p95_ms": msf(s.P95),
		"p99_ms": msf(s.P99), "max_ms": msf(s.Max), "mean_ms": msf(s.Mean)})
}

func (s latencyStats) String() string {
	if s.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s  (mean %s)", ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max), ms(s.Mean))
}

// summarize computes nearest-rank percentiles of ds (which it sorts).
func summarize(ds []time.Duration) latencyStats {
	s := latencyStats{Count: len(ds)}
	if len(ds) == 0 {
		return s
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	s.P50, s.P95, s.P99 = percentile(ds, 50), percentile(ds, 95), percentile(ds, 99)
	s.Max, s.Mean = ds[len(ds)-1], sum/time.Duration(len(ds))
	return s
}

// percentile is the nearest-rank p-th percentile of the sorted ds:
// the smallest value with at least p% of the samples at or below it.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 · n)
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

// benchSample is one operation's outcome.
type benchSample struct {
	total  time.Duration
	phases map[string]time.Duration
	err    error
}

// benchReport is the result of a bench run.
type benchReport struct {
	Mode        string                  `json:"mode"`
	Threshold   int                     `json:"threshold"`
	N           int                     `json:"n"`
	Signers     int                     `json:"signers,omitempty"`
	Concurrency int                     `json:"concurrency"`
	Duration    string                  `json:"duration"`
	Warmup      string                  `json:"warmup"`
	OK          int                     `json:"ok"`
	Failed      int                     `json:"failed"`
	Elapsed     float64                 `json:"elapsed_s"`
	Throughput  float64                 `json:"throughput_per_s"`
	Latency     latencyStats            `json:"latency"`
	Phases      map[string]latencyStats `json:"phases"`
	Failures    map[string]int          `json:"failures,omitempty"`
	FirstError  string                  `json:"first_error,omitempty"`
	CPUs        int                     `json:"cpus"`
	LoadBefore  string                  `json:"loadavg_before,omitempty"`
	LoadAfter   string                  `json:"loadavg_after,omitempty"`
	CPU         *cpuUsage               `json:"cpu,omitempty"` // per process, with -pids (Linux)
}

// benchLoop runs op from c workers until d has passed after warmup; ops
// started during the warm-up are not counted. opTimeout bounds each op.
// opened, if not nil, runs when the measured window opens, and has
// returned when benchLoop does.
func benchLoop(ctx context.Context, c int, warmup, d, opTimeout time.Duration, op func(ctx context.Context) benchSample, opened func()) (samples []benchSample, elapsed time.Duration) {
	start := time.Now()
	measureFrom := start.Add(warmup)
	deadline := measureFrom.Add(d)
	var mu sync.Mutex
	var lastEnd time.Time
	var wg sync.WaitGroup
	if opened != nil {
		wg.Go(func() {
			select {
			case <-time.After(time.Until(measureFrom)):
				opened()
			case <-ctx.Done():
			}
		})
	}
	for range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				began := time.Now()
				if !began.Before(deadline) {
					return
				}
				octx, cancel := context.WithTimeout(ctx, opTimeout)
				s := op(octx)
				cancel()
				if began.Before(measureFrom) {
					continue
				}
				end := time.Now()
				mu.Lock()
				samples = append(samples, s)
				if end.After(lastEnd) {
					lastEnd = end
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if lastEnd.After(measureFrom) {
		elapsed = lastEnd.Sub(measureFrom)
	}
	return samples, elapsed
}

// report tallies samples.
func (r *benchReport) fill(samples []benchSample, elapsed time.Duration) {
	var lat []time.Duration
	phases := map[string][]time.Duration{}
	r.Failures = map[string]int{}
	for _, s := range samples {
		if s.err != nil {
			r.Failed++
			r.Failures[client.ErrType(s.err)]++
			if r.FirstError == "" {
				r.FirstError = s.err.Error()
			}
			continue
		}
		r.OK++
		lat = append(lat, s.total)
		for k, v := range s.phases {
			phases[k] = append(phases[k], v)
		}
	}
	r.Elapsed = elapsed.Seconds()
	if elapsed > 0 {
		r.Throughput = float64(r.OK) / elapsed.Seconds()
	}
	r.Latency = summarize(lat)
	r.Phases = map[string]latencyStats{}
	for k, v := range phases {
		r.Phases[k] = summarize(v)
	}
	if len(r.Failures) == 0 {
		r.Failures = nil
	}
}

func (r *benchReport) human(w io.Writer) {
	unit := "imports/s"
	if r.Mode == "sign" {
		unit = "signatures/s"
	}
	fmt.Fprintf(w, "ok %d, failed %d in %.2fs: throughput %.1f %s\n", r.OK, r.Failed, r.Elapsed, r.Throughput, unit)
	fmt.Fprintf(w, "latency (whole %s): %s\n", r.Mode, r.Latency)
	for _, k := range sortedKeys(r.Phases) {
		fmt.Fprintf(w, "  %-9s %s\n", k+":", r.Phases[k])
	}
	if r.Failed > 0 {
		var parts []string
		for _, k := range sortedKeys(r.Failures) {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.Failures[k]))
		}
		fmt.Fprintf(w, "failures: %s\nfirst error: %s\n", strings.Join(parts, ", "), r.FirstError)
	}
	if r.CPU != nil {
		fmt.Fprintf(w, "CPU per %s: %s\n", r.unit(), r.CPU.summary())
	}
	fmt.Fprintf(w, "machine: %d CPUs, load average before %s, after %s\n", r.CPUs, r.LoadBefore, r.LoadAfter)
}

// unit is what one operation of the run is called.
func (r *benchReport) unit() string {
	if r.Mode == "sign" {
		return "signature"
	}
	return "import"
}

// loadavg returns the first three fields of /proc/loadavg ("" elsewhere).
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func runBenchCmd(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usagef("bench import|sign|floor|all [flags]")
	}
	switch args[0] {
	case "import", "sign":
	case "floor":
		return runBenchFloorCmd(ctx, c, args[1:])
	case "all":
		return runBenchAllCmd(ctx, c, args[1:])
	default:
		return usagef("bench import|sign|floor|all [flags]")
	}
	mode := args[0]
	fs := flag.NewFlagSet("quorumctl bench "+mode, flag.ContinueOnError)
	var h httpFlags
	var q quorumFlags
	var o benchOpts
	h.register(fs, 60*time.Second)
	fs.Lookup("timeout").Usage = "time limit of one operation"
	q.register(fs)
	o.register(fs)
	if err := c.parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	parties, err := benchParties(ctx, &q, &h, o.conc, o.perDaemon)
	if err != nil {
		return err
	}
	out := h.printer(c)
	rep, err := runBench(ctx, mode, parties, &h, &o, out)
	if rep != nil {
		if perr := out.result(rep, rep.human); err == nil {
			err = perr
		}
	}
	return err
}

// benchOpts are the load flags shared by bench import, sign and all.
type benchOpts struct {
	conc            int
	dur, warmup     time.Duration
	threshold       int
	importer        int
	signers, keyIDs string
	msgSize         int
	perDaemon       int
	procs           []benchProc
}

func (o *benchOpts) register(fs *flag.FlagSet) {
	fs.IntVar(&o.conc, "c", 32, "concurrent operations (1..1024)")
	fs.DurationVar(&o.dur, "d", 10*time.Second, "measured duration (at most 10m)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before the measured duration")
	fs.IntVar(&o.threshold, "threshold", 2, "threshold t of the imported keys")
	fs.IntVar(&o.importer, "importer", 0, "import: index of the importer")
	fs.StringVar(&o.signers, "signers", "", "sign: indexes of the signers (default: the first t daemons)")
	fs.StringVar(&o.keyIDs, "key-ids", "", "sign: an imported key's ids, one per daemon (default: import a fresh key first)")
	fs.IntVar(&o.msgSize, "msg-size", 32, "sign: bytes of the random message signed each time")
	fs.IntVar(&o.perDaemon, "parties-per-daemon", 1, "parties (key slots) each daemon plays, for quorums larger than the daemons at hand")
	fs.Func("pids", "the quorum's processes whose CPU per operation to report, name=pid comma-separated (Linux; d0, d1, … are daemons, relay the relay)", func(s string) error {
		var err error
		o.procs, err = parseBenchProcs(s)
		return err
	})
}

func (o *benchOpts) check() error {
	switch {
	case o.conc < 1 || o.conc > maxBenchConcurrency:
		return usagef("-c %d: want 1..%d", o.conc, maxBenchConcurrency)
	case o.dur <= 0 || o.dur > maxBenchDuration:
		return usagef("-d %s: want (0, %s]", o.dur, maxBenchDuration)
	case o.warmup < 0 || o.warmup > maxBenchWarmup:
		return usagef("-warmup %s: want [0, %s]", o.warmup, maxBenchWarmup)
	case o.msgSize < 1 || o.msgSize > 4096:
		return usagef("-msg-size %d: want 1..4096", o.msgSize)
	case o.perDaemon < 1 || o.perDaemon > 255:
		return usagef("-parties-per-daemon %d: want 1..255", o.perDaemon)
	}
	return nil
}

// benchParties resolves the daemons and refuses any not on this machine;
// each daemon plays per parties, listed daemon by daemon. Nothing is
// retried: an overload answer is a failure the report counts.
func benchParties(ctx context.Context, q *quorumFlags, h *httpFlags, conns, per int) ([]*client.Client, error) {
	daemons, err := q.parties(h, conns, client.WithRetries(0))
	if err != nil {
		return nil, err
	}
	var parties []*client.Client
	for _, d := range daemons {
		for _, base := range d.Bases() {
			if err := checkLoopback(ctx, base); err != nil {
				return nil, fmt.Errorf("bench only loads daemons on this machine: %w", err)
			}
		}
		for range per {
			parties = append(parties, d)
		}
	}
	return parties, nil
}

// runBench loads parties with mode ("import" or "sign") as o says and
// tallies the outcome; it fails when nothing succeeded.
func runBench(ctx context.Context, mode string, parties []*client.Client, h *httpFlags, o *benchOpts, out *printer) (*benchReport, error) {
	n := len(parties)
	rep := &benchReport{Mode: mode, Threshold: o.threshold, N: n, Concurrency: o.conc, Duration: o.dur.String(),
		Warmup: o.warmup.String(), CPUs: runtime.NumCPU()}

	var op func(ctx context.Context) benchSample
	switch mode {
	case "import":
		if o.importer < 0 || o.importer >= n {
			return nil, usagef("-importer %d: want 0..%d", o.importer, n-1)
		}
		op = func(ctx context.Context) benchSample {
			k, err := generatePrivateKey()
			if err != nil {
				return benchSample{err: err}
			}
			defer k.wipe()
			t0 := time.Now()
			qu := &client.Quorum{Parties: parties}
			res, err := qu.Import(ctx, k.b[:], client.ImportOptions{Threshold: o.threshold, Importer: o.importer})
			if err != nil {
				return benchSample{err: err}
			}
			return benchSample{total: time.Since(t0), phases: map[string]time.Duration{
				"slots": res.Timing.Slots, "room": res.Timing.Room, "ceremony": res.Timing.Ceremony}}
		}
	case "sign":
		set, err := benchSignSetup(ctx, parties, h, o.threshold, o.signers, o.keyIDs, out)
		if err != nil {
			return nil, err
		}
		rep.Threshold, rep.Signers = set.T, len(set.Clients)
		op = func(ctx context.Context) benchSample {
			msg := make([]byte, o.msgSize)
			rand.Read(msg)
			res, err := set.Sign(ctx, msg)
			if err != nil {
				return benchSample{err: err}
			}
			// The window is the service's, first request (the room) to last
			// 200, as the floor models it: the bench client's own check of
			// the signature with three verifiers comes after and is not
			// timed (it still runs, and its CPU still counts at C>1).
			return benchSample{total: res.Durations.Room + res.Durations.Ceremony, phases: map[string]time.Duration{
				"room": res.Durations.Room, "ceremony": res.Durations.Ceremony}}
		}
	}
	what := fmt.Sprintf("%d-of-%d import on %d daemons", o.threshold, n, n)
	if mode == "sign" {
		what = fmt.Sprintf("sign with %d of a %d-of-%d key", rep.Signers, rep.Threshold, n)
	}
	out.step("bench %s: %s, concurrency %d, duration %s (+%s warm-up)", mode, what, o.conc, o.dur, o.warmup)
	rep.LoadBefore = loadavg()
	var cpu0 cpuSample
	samples, elapsed := benchLoop(ctx, o.conc, o.warmup, o.dur, h.timeout, op, func() { cpu0 = sampleCPU(o.procs) })
	cpu1 := sampleCPU(o.procs)
	rep.LoadAfter = loadavg()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench interrupted: %w", err)
	}
	rep.fill(samples, elapsed)
	rep.CPU = cpuBetween(o.procs, cpu0, cpu1, rep.OK, rep.CPUs)
	switch {
	case rep.OK == 0 && rep.Failed == 0:
		return rep, fmt.Errorf("no %s completed in the measured window: raise -d (or -warmup)", mode)
	case rep.OK == 0:
		return rep, fmt.Errorf("no %s succeeded (%d failed): %s", mode, rep.Failed, rep.FirstError)
	}
	return rep, nil
}

// benchSignSetup picks the signers and the key: the given key ids, or a
// key imported for the occasion with a fresh private key.
func benchSignSetup(ctx context.Context, parties []*client.Client, h *httpFlags, threshold int, signers, keyIDs string, out *printer) (*client.Signers, error) {
	n := len(parties)
	sctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	qu := &client.Quorum{Parties: parties}
	ids := splitList(keyIDs)
	if len(ids) == 0 {
		k, err := generatePrivateKey()
		if err != nil {
			return nil, err
		}
		res, err := qu.Import(sctx, k.b[:], client.ImportOptions{Threshold: threshold})
		k.wipe()
		if err != nil {
			return nil, fmt.Errorf("importing the key to sign with: %w", err)
		}
		ids = res.KeyIDs
		out.step("imported a fresh %d-of-%d key: pubkey %s, key_ids %s", threshold, n, res.Pubkey, strings.Join(ids, ","))
	}
	if len(ids) != n {
		return nil, usagef("%d key ids for %d daemons", len(ids), n)
	}
	var idx []int
	if signers != "" {
		var err error
		if idx, err = parseIndexes(signers, n); err != nil {
			return nil, err
		}
	}
	if idx == nil {
		// Learn t from the first daemon's record, then take the first t.
		rec, err := parties[0].GetKey(sctx, ids[0])
		if err != nil {
			return nil, fmt.Errorf("reading key %s on daemon 0: %w", ids[0], err)
		}
		if rec.T < 1 || rec.T > n {
			return nil, errors.New("daemon 0 reports no threshold for the key: is it imported?")
		}
		for i := range rec.T {
			idx = append(idx, i)
		}
	}
	return qu.PrepareSign(sctx, ids, client.SignOptions{Signers: idx})
}
