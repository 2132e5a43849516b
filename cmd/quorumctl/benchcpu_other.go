//go:build !unix

package main

import "time"

// processCPU is unknown here: the floor's throughput then reads as zero.
func processCPU() time.Duration { return 0 }
