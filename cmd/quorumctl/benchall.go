package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// benchAll is `bench all`: the floor, then imports and signatures at each
// concurrency, all in one run so that the ratios share the machine's noise.
type benchAll struct {
	Floor   *floorReport   `json:"floor"`
	Runs    []*benchReport `json:"runs"`
	Ratios  []string       `json:"ratios"`
	When    string         `json:"when"`
	LoadAvg string         `json:"loadavg_before"`
}

func runBenchAllCmd(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl bench all", flag.ContinueOnError)
	var h httpFlags
	var q quorumFlags
	var o benchOpts
	var fo floorOpts
	h.register(fs, 60*time.Second)
	fs.Lookup("timeout").Usage = "time limit of one operation"
	q.register(fs)
	o.register(fs)
	fo.register(fs, false)
	concs := fs.String("cs", "1,32", "the concurrencies to run, comma-separated")
	outFile := fs.String("out", "", "also write the ratio lines to this file (replaced)")
	fs.Lookup("c").Usage = "unused: see -cs"
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	cs, err := parseIndexes(*concs, maxBenchConcurrency+1)
	if err != nil || len(cs) == 0 || cs[0] < 1 {
		return usagef("-cs %q: want concurrencies 1..%d", *concs, maxBenchConcurrency)
	}
	parties, err := benchParties(ctx, &q, &h, max(64, 2*slices.Max(cs)), o.perDaemon)
	if err != nil {
		return err
	}
	if fo.n == 0 {
		fo.n = len(parties)
	}
	fo.t = o.threshold
	fo.u = o.threshold
	if o.signers != "" {
		fo.u = len(splitList(o.signers))
	}
	out := h.printer(c)
	all := &benchAll{When: time.Now().UTC().Format(time.RFC3339), LoadAvg: loadavg()}

	out.step("bench all: measuring the floor (%s per component)", fo.budget)
	fctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	all.Floor, err = measureFloor(fctx, c, &fo, parties[0])
	cancel()
	if err != nil {
		return err
	}
	if !h.json {
		all.Floor.human(c.stdout)
	}
	for _, conc := range cs {
		for _, mode := range []string{"import", "sign"} {
			oc := o
			oc.conc = conc
			rep, err := runBench(ctx, mode, parties, &h, &oc, out)
			if rep != nil && !h.json {
				rep.human(c.stdout)
			}
			if err != nil {
				return err
			}
			all.Runs = append(all.Runs, rep)
		}
	}
	all.Ratios = all.ratioLines()
	if err := out.result(all, func(w io.Writer) {
		fmt.Fprintln(w, strings.Join(all.lines(), "\n"))
	}); err != nil {
		return err
	}
	if *outFile != "" {
		var b bytes.Buffer
		all.record(&b)
		if err := os.WriteFile(*outFile, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ratioLines puts each run beside its floor.
func (a *benchAll) ratioLines() []string {
	var lines []string
	for _, r := range a.Runs {
		lines = append(lines, a.runRatioLines(r)...)
	}
	return lines
}

// lines are the ratio lines, each run's followed by where its CPU went
// (lines starting with "#", so that readers of the ratios skip them).
func (a *benchAll) lines() []string {
	var lines []string
	for _, r := range a.Runs {
		lines = append(lines, a.runRatioLines(r)...)
		if l := a.cpuLine(r); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// runRatioLines puts a run beside its floor: at concurrency 1 the latency
// (p50 over the floor's), above it the throughput (the floor's over the
// run's; latency there is queueing, no floor applies).
func (a *benchAll) runRatioLines(r *benchReport) []string {
	f := a.Floor
	lat := func(name string, s latencyStats, floor time.Duration) string {
		return fmt.Sprintf("%-12s C=%-3d p50 %7.2f ms p99 %7.2f ms floor %6.2f ms ratio %5.2f",
			name, r.Concurrency, msf(s.P50), msf(s.P99), msf(floor), float64(s.P50)/float64(floor))
	}
	thr := func(name string, floor float64) string {
		return fmt.Sprintf("%-12s C=%-3d p50 %7.2f ms p99 %7.2f ms throughput %6.1f/s floor %6.1f/s ratio %5.2f",
			name, r.Concurrency, msf(r.Latency.P50), msf(r.Latency.P99), r.Throughput, floor, floor/r.Throughput)
	}
	switch {
	case r.Mode == "import" && r.Concurrency == 1:
		return []string{lat("import", r.Phases["ceremony"], f.Import), lat("import-whole", r.Latency, f.ImportWhole)}
	case r.Mode == "import":
		return []string{thr("import-whole", f.ImportPerS)}
	case r.Concurrency == 1:
		return []string{lat("sign", r.Latency, f.Sign)}
	default:
		return []string{thr("sign", f.SignPerS)}
	}
}

// cpuLine says where a run's CPU went, per operation and process, beside
// the CPU the floor's arithmetic gives one operation; "" without -pids
// accounts (not Linux). An import's CPU covers the whole import (slots,
// room, ceremony): the C=1 run gives one line, under import-whole.
func (a *benchAll) cpuLine(r *benchReport) string {
	if r.CPU == nil {
		return ""
	}
	name, floor := "sign", a.Floor.signCPU()
	if r.Mode == "import" {
		name, floor = "import-whole", a.Floor.importCPU()
	}
	return fmt.Sprintf("#   %s C=%d CPU per %s: %s; floor CPU %s", name, r.Concurrency, r.unit(), r.CPU.summary(), ms(floor))
}

// record writes the file `make bench` keeps: the ratios and what they were
// measured against.
func (a *benchAll) record(w io.Writer) {
	f := a.Floor
	fmt.Fprintf(w, "# quorumctl bench all, %s: %d-of-%d, %d signers, %d CPUs, load average before %s\n",
		a.When, f.T, f.N, f.Signers, f.CPUs, a.LoadAvg)
	fmt.Fprintln(w, "# latency ratio = p50 / floor; throughput ratio = floor / measured (lower is better, 1 = the floor)")
	for _, l := range a.lines() {
		fmt.Fprintln(w, l)
	}
	var b bytes.Buffer
	f.human(&b)
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		fmt.Fprintln(w, "# "+l)
	}
}

// relayURL accepts host:port as the relay's address (as daemons' configs
// give it).
func relayURL(s string) string {
	if s != "" && !strings.Contains(s, "://") {
		return "http://" + s
	}
	return s
}
