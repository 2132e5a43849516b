package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The cluster runs unprivileged, answers on its port with the password,
// refuses connections while stopped, comes back on the same port and
// leaves nothing behind.
func TestPostgresLifecycle(t *testing.T) {
	pg := StartOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := pg.CreateSchema(ctx, "postgres", "lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	query := func() (superuser, path string, err error) {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return "", "", err
		}
		defer c.Close(ctx)
		err = c.QueryRow(ctx, "SELECT current_setting('is_superuser'), current_setting('search_path')").Scan(&superuser, &path)
		return superuser, path, err
	}
	if su, path, err := query(); err != nil || su != "on" || path != "lifecycle" {
		t.Fatalf("connect: superuser=%q search_path=%q %v", su, path, err)
	}
	if st, err := os.Stat(pg.Dir + "/data"); err != nil {
		t.Fatal(err)
	} else if os.Geteuid() == 0 && ownerUID(st) == 0 {
		t.Fatal("data directory owned by root: the cluster must run unprivileged")
	}
	bad := &Cluster{User: pg.User, Password: "wrong", Port: pg.Port}
	if c, err := pgx.Connect(ctx, bad.DSN("postgres")); err == nil {
		c.Close(ctx)
		t.Fatal("a wrong password was accepted")
	}
	port := pg.Port
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := query(); err == nil {
		t.Fatal("connected to a stopped cluster")
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := query(); err != nil || pg.Port != port {
		t.Fatalf("after restart: port %d→%d, %v", port, pg.Port, err)
	}
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := query(); err != nil {
		t.Fatalf("after crash recovery: %v", err)
	}
	dir := pg.Dir
	if err := pg.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("cluster directory left behind: %v", err)
	}
}
