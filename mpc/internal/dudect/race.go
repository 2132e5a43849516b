//go:build race

package dudect

// RaceEnabled reports whether the binary was built with -race, whose
// instrumentation distorts timing and slows arithmetic.
const RaceEnabled = true
