//go:build race

package main

const e2eCeremonyTimeout = "60s"

// crashCeremonyTimeout bounds how long the survivors of a crashed party wait
// in TestE2ECrashMidCeremony, and crashTrials is how many crashes it runs.
const (
	crashCeremonyTimeout = "12s"
	crashTrials          = 4
)
