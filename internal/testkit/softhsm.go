package testkit

import (
	"testing"

	"github.com/quorumd/quorumd/daemon/quorumtest/hsmtest"
)

// SoftHSMToken is hsmtest.Token: a freshly initialized SoftHSM2 token.
type SoftHSMToken = hsmtest.Token

// SoftHSMModule is hsmtest.Module.
func SoftHSMModule() string { return hsmtest.Module() }

// NewSoftHSMTokens is hsmtest.NewTokens: create every token a test binary
// needs before its first hsm.Open.
func NewSoftHSMTokens(dir string, labels ...string) ([]SoftHSMToken, error) {
	return hsmtest.NewTokens(dir, labels...)
}

// SoftHSM is hsmtest.NewToken.
func SoftHSM(t testing.TB, label string) SoftHSMToken { t.Helper(); return hsmtest.NewToken(t, label) }
