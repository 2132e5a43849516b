//go:build race

package ceremony

// slow scales ceremony deadlines under the race detector, which makes the
// constant-time arithmetic many times slower.
const slow = 5
