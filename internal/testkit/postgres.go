package testkit

import (
	"testing"

	"github.com/quorumd/quorumd/daemon/quorumtest/pgtest"
)

// Postgres is pgtest.Cluster: a throwaway PostgreSQL cluster.
type Postgres = pgtest.Cluster

// ErrNoPostgres is pgtest.ErrMissing.
var ErrNoPostgres = pgtest.ErrMissing

// PostgresBinDir is pgtest.BinDir.
func PostgresBinDir() (string, error) { return pgtest.BinDir() }

// StartPostgres is pgtest.Start.
func StartPostgres() (*Postgres, error) { return pgtest.Start() }

// PostgresOrSkip is pgtest.StartOrSkip.
func PostgresOrSkip(tb testing.TB) *Postgres { tb.Helper(); return pgtest.StartOrSkip(tb) }

// SkipNoPostgres is pgtest.Skip.
func SkipNoPostgres(tb testing.TB, err error) { tb.Helper(); pgtest.Skip(tb, err) }
