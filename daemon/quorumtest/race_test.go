//go:build race

package quorumtest_test

// raceEnabled: this test binary runs under the race detector.
const raceEnabled = true
