//go:build !race

package main

const e2eCeremonyTimeout = "15s"
