package testkit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

func relayRoundTrip(t *testing.T, addr string, cfg relay.ClientConfig) {
	t.Helper()
	c, err := relay.NewClient(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
	room, err := c.CreateRoom(ctx, 2)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	ids := make([]*envelope.Identity, 3)
	members := make([]envelope.Party, 3)
	for i := range ids {
		if ids[i], err = envelope.GenerateIdentity(); err != nil {
			t.Fatal(err)
		}
		members[i] = ids[i].Public()
	}
	a, err := c.Join(ctx, room, ids[0], members)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	b, err := c.Join(ctx, room, ids[1], members)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := a.Send(ctx, b.Party(), []byte("ping")); err != nil {
		t.Fatalf("send: %v", err)
	}
	m, err := b.Recv(ctx)
	if err != nil || string(m.Body) != "ping" || m.From != a.Party() {
		t.Fatalf("recv: %v %+v", err, m)
	}
	if _, err := c.Join(ctx, room, ids[2], members); !errors.Is(err, relay.ErrRoomFull) {
		t.Fatalf("third party: %v", err)
	}
}

func TestRelay(t *testing.T) {
	srv, addr := RelayServer(t, relay.Config{MaxRoomSize: 2})
	relayRoundTrip(t, addr, relay.ClientConfig{})
	if st := srv.Stats(); st.RoomsCreated != 1 || st.Messages != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRelayTLS(t *testing.T) {
	pki := NewRelayPKI(t)
	addr := Relay(t, relay.Config{TLS: pki.ServerTLS(true)})
	relayRoundTrip(t, addr, relay.ClientConfig{TLS: pki.ClientTLS(true)})
}

func TestRelayProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the quorum-relay binary")
	}
	pki := NewRelayPKI(t)
	tests := []struct {
		name string
		args []string
		cfg  relay.ClientConfig
	}{
		{"plain", []string{"-max-room-size", "2"}, relay.ClientConfig{}},
		{"tls with client certs", []string{"-tls-cert", pki.ServerCertFile, "-tls-key", pki.ServerKeyFile,
			"-tls-client-ca", pki.CAFile}, relay.ClientConfig{TLS: pki.ClientTLS(true)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := RelayProcess(t, tc.args...)
			relayRoundTrip(t, addr, tc.cfg)
		})
	}
}
