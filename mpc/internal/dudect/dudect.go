// Package dudect is a statistical timing-leak test in the style of dudect
// (Reparaz, Balasch, Verbauwhede, "Dude, is my code constant time?", 2017).
//
// An operation is timed on two classes of pre-generated secret inputs — class
// 0 a fixed value (e.g. a small or low-Hamming-weight scalar), class 1 fresh
// random values — interleaved in random order. If the operation is constant
// time the two timing distributions are the same, so Welch's t statistic
// stays small; |t| ≥ 4.5 is strong evidence of a leak. Because the classes
// are interleaved at random, machine noise (other load, frequency changes)
// widens both distributions equally instead of biasing one, and the
// percentile crops discard the long tail that such noise produces.
//
// Tests call Test (expects no leak) or ExpectLeak (expects one, to show the
// harness can fail). Both skip under the race detector; the Makefile runs
// the timing tests in a separate run without -race. QUORUMD_TIMING selects
// the sample count: "long" (≥ 100,000 per class, make bench), "ci" or unset
// (a few seconds per test), or a positive integer.
package dudect

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Threshold is the |t| at or above which a timing difference counts as a leak.
const Threshold = 4.5

const (
	// EnvVar selects the sample count, see Samples.
	EnvVar = "QUORUMD_TIMING"
	// LongSamples is the per-class sample count of the long mode.
	LongSamples = 100_000
	// CISamples is the per-class sample count of the ci mode: each of the
	// secp operations then takes a few seconds on a shared 2-core machine,
	// and an operation up to ~0.5 ms stays under ~20 s.
	CISamples = 10_000
	// MinSamples is the smallest per-class count Measure accepts.
	MinSamples = 100
)

const (
	// minSampleTime is the shortest timed interval; shorter operations are
	// repeated (on the same input) until a batch takes at least this long,
	// keeping clock read overhead and granularity small against the signal.
	minSampleTime = 10 * time.Microsecond
	maxBatch      = 1 << 12
	// chunk is how many samples are timed between explicit garbage
	// collections, so that an allocating op cannot grow the heap without
	// bound while the collector is off.
	chunk = 4096
	// warmup is how many untimed batches precede the measurement and follow
	// each collection, to refill caches and branch predictors.
	warmup = 64
	// crops is the number of percentile crops, at 1 − 0.5^(10(i+1)/crops)
	// of the pooled distribution as in dudect: 50%, 75%, ..., 99.9%.
	crops = 10
	// minTestN is the per-class count below which a cropped test is ignored.
	minTestN = 30
)

// ErrBadMode reports an unusable QUORUMD_TIMING value.
var ErrBadMode = errors.New("dudect: bad " + EnvVar + " value")

// Result is the outcome of Measure: the Welch t statistic with the largest
// |T| over the raw data and the percentile crops, and what it was computed on.
type Result struct {
	// T is (mean time of class 0 − mean time of class 1) / standard error,
	// so T > 0 means the fixed class was slower.
	T float64
	// N is the per-class sample count of the test that gave T.
	N [2]int
	// Crop is the pooled percentile kept by that test (1 = raw data).
	Crop float64
	// Batch is the number of op calls per timed sample.
	Batch int
}

// String formats r for test logs.
func (r Result) String() string {
	return fmt.Sprintf("t = %+.2f (n = %d/%d, crop %.4g, batch %d)", r.T, r.N[0], r.N[1], r.Crop, r.Batch)
}

// Samples returns the per-class sample count selected by QUORUMD_TIMING:
// "long" → LongSamples, "ci" or unset → CISamples, a positive integer ≥
// MinSamples → that count; anything else → CISamples (Test reports it).
func Samples() int {
	n, err := samplesFrom(os.Getenv(EnvVar))
	if err != nil {
		return CISamples
	}
	return n
}

func samplesFrom(v string) (int, error) {
	switch v {
	case "long":
		return LongSamples, nil
	case "", "ci":
		return CISamples, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < MinSamples {
		return 0, fmt.Errorf("%w %q: want long, ci or an integer ≥ %d", ErrBadMode, v, MinSamples)
	}
	return n, nil
}

// Test measures op with Samples() inputs per class and fails t if |T| ≥
// Threshold. fixed and random are called once per sample before timing starts
// and should return a fresh value each call and make the same allocations
// (so both classes' inputs are spread over memory alike: a class whose
// inputs sit closer together runs measurably faster). It skips under the
// race detector.
//
// A first |t| ≥ Threshold is confirmed by a second, independent measurement
// before the test fails: on a shared 2-core machine a burst of interference
// during one short run can push a tiny op's statistic over the threshold in
// either direction, while a real leak shows again (with the same sign).
func Test[T any](t *testing.T, fixed, random func() T, op func(T)) {
	t.Helper()
	n := prepare(t)
	r := Measure(n, fixed, random, op)
	t.Logf("%s=%q: %v", EnvVar, os.Getenv(EnvVar), r)
	if math.Abs(r.T) < Threshold {
		return
	}
	again := Measure(n, fixed, random, op)
	t.Logf("confirming: %v", again)
	if math.Abs(again.T) >= Threshold && (again.T > 0) == (r.T > 0) {
		t.Errorf("timing depends on the secret input class: |t| = %.2f then %.2f ≥ %.1f (%v; %v)",
			math.Abs(r.T), math.Abs(again.T), Threshold, r, again)
	}
}

// ExpectLeak is Test's mirror for a known variable-time op: it fails t unless
// |T| > Threshold, showing that the harness can detect a leak.
func ExpectLeak[T any](t *testing.T, fixed, random func() T, op func(T)) {
	t.Helper()
	n := prepare(t)
	r := Measure(n, fixed, random, op)
	t.Logf("%s=%q: %v", EnvVar, os.Getenv(EnvVar), r)
	if math.Abs(r.T) <= Threshold {
		t.Errorf("harness did not detect a known leak: |t| = %.2f ≤ %.1f (%v)", math.Abs(r.T), Threshold, r)
	}
}

// prepare skips under -race and returns the sample count, failing t on a bad
// QUORUMD_TIMING value rather than silently running another mode.
func prepare(t *testing.T) int {
	t.Helper()
	if RaceEnabled {
		t.Skip("dudect: timing tests are skipped under the race detector, which distorts timing; " +
			"they run without -race in `make test` (QUORUMD_TIMING=ci go test -run ConstantTime ./mpc/...)")
	}
	n, err := samplesFrom(os.Getenv(EnvVar))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Measure times op on samples inputs of each class — class 0 from fixed,
// class 1 from random, all generated before timing — in a random interleaved
// order, and returns the Welch t statistic with the largest |t| over the raw
// timings and dudect's percentile crops. It pins the goroutine to its OS
// thread, turns the garbage collector off while timing (collecting
// explicitly between chunks, untimed), warms up, and times batches of op
// calls when one call is too short for the clock. It panics if samples <
// MinSamples.
func Measure[T any](samples int, fixed, random func() T, op func(T)) Result {
	if samples < MinSamples {
		panic(fmt.Sprintf("dudect: samples = %d < %d", samples, MinSamples))
	}
	n := 2 * samples
	class := make([]uint8, n)
	for i := samples; i < n; i++ {
		class[i] = 1
	}
	rand.Shuffle(n, func(i, j int) { class[i], class[j] = class[j], class[i] })
	// Generating in the timing order interleaves both classes' inputs in
	// memory, so neither class is favoured by locality.
	inputs := make([]T, n)
	for i, c := range class {
		if c == 0 {
			inputs[i] = fixed()
		} else {
			inputs[i] = random()
		}
	}
	times := make([]int64, n)

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The inner call turns the collector off now; the deferred one restores it.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()

	batch := calibrate(inputs, op)
	for start := 0; start < n; start += chunk {
		if start > 0 {
			runtime.GC()
		}
		end := min(start+chunk, n)
		warm(inputs[start:end], op, batch)
		for i := start; i < end; i++ {
			x := inputs[i]
			t0 := time.Now()
			for range batch {
				op(x)
			}
			times[i] = int64(time.Since(t0))
		}
	}
	r := analyse(class, times)
	r.Batch = batch
	return r
}

// calibrate warms up and returns how many op calls make one sample last at
// least minSampleTime, judged on the median of a few single calls.
func calibrate[T any](inputs []T, op func(T)) int {
	warm(inputs, op, 1)
	probe := make([]int64, min(len(inputs), 101))
	for i := range probe {
		x := inputs[i]
		t0 := time.Now()
		op(x)
		probe[i] = int64(time.Since(t0))
	}
	slices.Sort(probe)
	med := max(probe[len(probe)/2], 1)
	batch := int((int64(minSampleTime) + med - 1) / med)
	return min(max(batch, 1), maxBatch)
}

// warm runs op untimed on up to warmup inputs, batch times each.
func warm[T any](inputs []T, op func(T), batch int) {
	for i := range min(warmup, len(inputs)) {
		for range batch {
			op(inputs[i])
		}
	}
}

// welch accumulates per-class moments with Welford's method.
type welch struct {
	n    [2]int
	mean [2]float64
	m2   [2]float64
}

func (w *welch) push(c uint8, x float64) {
	w.n[c]++
	d := x - w.mean[c]
	w.mean[c] += d / float64(w.n[c])
	w.m2[c] += d * (x - w.mean[c])
}

// t returns Welch's t = (mean0 − mean1) / sqrt(var0/n0 + var1/n1); 0 when a
// class has fewer than two samples or both variances are zero.
func (w *welch) t() float64 {
	if w.n[0] < 2 || w.n[1] < 2 {
		return 0
	}
	v0 := w.m2[0] / float64(w.n[0]-1)
	v1 := w.m2[1] / float64(w.n[1]-1)
	se := math.Sqrt(v0/float64(w.n[0]) + v1/float64(w.n[1]))
	if se == 0 {
		return 0
	}
	return (w.mean[0] - w.mean[1]) / se
}

// analyse runs the raw test and the cropped tests and keeps the largest |t|.
func analyse(class []uint8, times []int64) Result {
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	limits := make([]int64, 0, crops+1)
	fracs := make([]float64, 0, crops+1)
	limits = append(limits, math.MaxInt64)
	fracs = append(fracs, 1)
	for i := range crops {
		f := 1 - math.Pow(0.5, 10*float64(i+1)/crops)
		limits = append(limits, sorted[int(f*float64(len(sorted)-1))])
		fracs = append(fracs, f)
	}
	tests := make([]welch, len(limits))
	for i, d := range times {
		for j, lim := range limits {
			if d <= lim {
				tests[j].push(class[i], float64(d))
			}
		}
	}
	var best Result
	for j := range tests {
		w := &tests[j]
		if j > 0 && (w.n[0] < minTestN || w.n[1] < minTestN) {
			continue
		}
		if t := w.t(); j == 0 || math.Abs(t) > math.Abs(best.T) {
			best = Result{T: t, N: w.n, Crop: fracs[j]}
		}
	}
	return best
}
