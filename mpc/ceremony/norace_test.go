//go:build !race

package ceremony

const slow = 1
