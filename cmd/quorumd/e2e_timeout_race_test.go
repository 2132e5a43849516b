//go:build race

package main

const e2eCeremonyTimeout = "60s"
