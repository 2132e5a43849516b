package dudect

import (
	"crypto/sha256"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestWelchKnownValue(t *testing.T) {
	tests := []struct {
		name   string
		c0, c1 []float64
		want   float64
	}{
		// means 3 and 6, variances 2.5 and 10: t = −3/√(0.5+2).
		{"different", []float64{1, 2, 3, 4, 5}, []float64{2, 4, 6, 8, 10}, -3 / math.Sqrt(2.5)},
		{"equal", []float64{1, 2, 3}, []float64{3, 2, 1}, 0},
		{"zero variance", []float64{7, 7}, []float64{7, 7}, 0},
		{"too few", []float64{1}, []float64{1, 2, 3}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w welch
			for _, x := range tc.c0 {
				w.push(0, x)
			}
			for _, x := range tc.c1 {
				w.push(1, x)
			}
			if got := w.t(); math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("t = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSamplesFrom(t *testing.T) {
	tests := []struct {
		env     string
		want    int
		wantErr bool
	}{
		{"", CISamples, false},
		{"ci", CISamples, false},
		{"long", LongSamples, false},
		{"5000", 5000, false},
		{"99", 0, true},
		{"lnog", 0, true},
		{"-1", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.env, func(t *testing.T) {
			got, err := samplesFrom(tc.env)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("samplesFrom(%q) = %d, %v; want %d, error %v", tc.env, got, err, tc.want, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrBadMode) {
				t.Fatalf("error %v is not ErrBadMode", err)
			}
			want := tc.want
			if tc.wantErr {
				want = CISamples // Samples falls back; Test reports the bad value
			}
			t.Setenv(EnvVar, tc.env)
			if s := Samples(); s != want {
				t.Fatalf("Samples() = %d with %s=%q", s, EnvVar, tc.env)
			}
		})
	}
}

// synthetic builds interleaved classes whose timings come from gen.
func synthetic(n int, gen func(r *rand.Rand, c uint8) int64) ([]uint8, []int64) {
	r := rand.New(rand.NewPCG(1, 2))
	class := make([]uint8, 2*n)
	times := make([]int64, 2*n)
	for i := range class {
		class[i] = uint8(r.IntN(2))
		times[i] = gen(r, class[i])
	}
	return class, times
}

func TestAnalyseSynthetic(t *testing.T) {
	noise := func(r *rand.Rand) int64 { return 10_000 + int64(r.NormFloat64()*300) }
	tests := []struct {
		name string
		gen  func(r *rand.Rand, c uint8) int64
		leak bool
	}{
		{"same distribution", func(r *rand.Rand, c uint8) int64 { return noise(r) }, false},
		{"class 0 slower by 50", func(r *rand.Rand, c uint8) int64 { return noise(r) + 50*int64(1-c) }, true},
		// Rare huge outliers in class 1 only inflate the raw variance; the
		// crops must still see the shift in the body of the distribution.
		{"shift hidden by outliers", func(r *rand.Rand, c uint8) int64 {
			x := noise(r) + 50*int64(1-c)
			if c == 1 && r.IntN(100) == 0 {
				x += 10_000_000
			}
			return x
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			class, times := synthetic(20_000, tc.gen)
			res := analyse(class, times)
			if leak := math.Abs(res.T) >= Threshold; leak != tc.leak {
				t.Fatalf("leak = %v, want %v (%v)", leak, tc.leak, res)
			}
		})
	}
}

func TestMeasureRejectsFewSamples(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Measure accepted samples < MinSamples")
		}
	}()
	Measure(MinSamples-1, func() int { return 0 }, func() int { return 0 }, func(int) {})
}

var sink uint64

// spin does n dependent multiply-adds: its time is proportional to n.
func spin(n int) {
	x := sink | 1
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	sink = x
}

// TestConstantTimeHarnessFlagsLeak shows the harness fails on an op whose
// work depends on the input class (200 vs 200–260 iterations).
func TestConstantTimeHarnessFlagsLeak(t *testing.T) {
	ExpectLeak(t,
		func() int { return 200 },
		func() int { return 200 + rand.IntN(61) },
		spin)
}

// TestConstantTimeSHA256 checks that a constant-time op (SHA-256 of a
// 64-byte block, all zero vs random) passes.
func TestConstantTimeSHA256(t *testing.T) {
	Test(t,
		func() *[64]byte { return new([64]byte) },
		func() *[64]byte {
			b := new([64]byte)
			for i := range b {
				b[i] = byte(rand.Uint32())
			}
			return b
		},
		func(b *[64]byte) { sha256.Sum256(b[:]) })
}

func TestConstantTimeMeasureBatchesShortOps(t *testing.T) {
	if RaceEnabled {
		t.Skip("timing-dependent calibration is meaningless under -race")
	}
	r := Measure(MinSamples, func() int { return 1 }, func() int { return 1 }, spin)
	if r.Batch < 2 {
		t.Fatalf("a ~1 ns op was timed in batches of %d, want several", r.Batch)
	}
	if r.N[0]+r.N[1] == 0 {
		t.Fatal("no samples analysed")
	}
}
