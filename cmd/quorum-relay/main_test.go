package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(*options) bool
		ok    bool
	}{
		{"defaults", nil, nil, func(o *options) bool {
			return o.listen == "127.0.0.1:8790" && o.cfg.MaxRooms == relay.DefaultMaxRooms && o.cfg.MaxWait == relay.DefaultMaxWait
		}, true},
		{"flags", []string{"-listen", ":9000", "-max-rooms", "7", "-default-ttl", "30s"}, nil, func(o *options) bool {
			return o.listen == ":9000" && o.cfg.MaxRooms == 7 && o.cfg.DefaultRoomTTL == 30*time.Second
		}, true},
		{"env", nil, map[string]string{"QUORUM_RELAY_MAX_ROOM_SIZE": "9", "QUORUM_RELAY_MAX_WAIT": "5s"}, func(o *options) bool {
			return o.cfg.MaxRoomSize == 9 && o.cfg.MaxWait == 5*time.Second
		}, true},
		{"flag beats env", []string{"-max-rooms=3"}, map[string]string{"QUORUM_RELAY_MAX_ROOMS": "9"}, func(o *options) bool {
			return o.cfg.MaxRooms == 3
		}, true},
		{"seat and client limits", []string{"-name", "relay.example", "-max-rooms-per-client", "20", "-client-room-rate", "2.5"},
			map[string]string{"QUORUM_RELAY_MAX_CLOCK_SKEW": "1m", "QUORUM_RELAY_MAX_SETS_PER_ROOM": "3"}, func(o *options) bool {
				return o.cfg.Name == "relay.example" && o.cfg.MaxRoomsPerClient == 20 && o.cfg.ClientRoomRate == 2.5 &&
					o.cfg.MaxClockSkew == time.Minute && o.cfg.MaxSetsPerRoom == 3
			}, true},
		{"nats", []string{"-nats-url", "nats://127.0.0.1:4222", "-name", "ha"}, nil, func(o *options) bool {
			return o.cfg.NATS != nil && o.cfg.NATS.URL == "nats://127.0.0.1:4222" && o.cfg.NATS.Prefix == "QUORUM_RELAY"
		}, true},
		{"nats without name", []string{"-nats-url", "nats://127.0.0.1:4222"}, nil, nil, false},
		{"bad env", nil, map[string]string{"QUORUM_RELAY_MAX_ROOMS": "many"}, nil, false},
		{"bad flag", []string{"-max-wait", "soon"}, nil, nil, false},
		{"unknown flag", []string{"-nope"}, nil, nil, false},
		{"positional", []string{"extra"}, nil, nil, false},
		{"cert without key", []string{"-tls-cert", "c.pem"}, nil, nil, false},
		{"client ca without cert", []string{"-tls-client-ca", "ca.pem"}, nil, nil, false},
		{"zero shutdown timeout", []string{"-shutdown-timeout", "0s"}, nil, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			o, err := parseOptions(tc.args, func(k string) string { return tc.env[k] }, &out)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
			if tc.ok && !tc.check(o) {
				t.Fatalf("options %+v", o)
			}
		})
	}
}

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRun runs the relay in-process and returns its address and a stop
// function that cancels it and returns run's error.
func startRun(t *testing.T, args []string, env map[string]string) (string, func() error, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), func(k string) string { return env[k] }, logs, ready)
	}()
	select {
	case addr := <-ready:
		var once sync.Once
		var runErr error
		stop := func() error {
			once.Do(func() { cancel(); runErr = <-errc })
			return runErr
		}
		t.Cleanup(func() { _ = stop() })
		return addr, stop, logs
	case err := <-errc:
		cancel()
		t.Fatalf("run: %v\n%s", err, logs.String())
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("relay not ready\n%s", logs.String())
	}
	return "", nil, nil
}

func TestRunServesLogsJSONAndStops(t *testing.T) {
	addr, stop, logs := startRun(t, []string{"-max-room-size", "3"}, map[string]string{"QUORUM_RELAY_LOG_LEVEL": "debug"})
	c, err := relay.NewClient(addr, relay.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.CreateRoom(ctx, 4); !errors.Is(err, relay.ErrBadRequest) {
		t.Fatalf("room over -max-room-size: %v", err)
	}
	room, err := c.CreateRoom(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	id, err := envelope.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	seat, err := c.TakeSeat(ctx, room, id, []envelope.Party{id.Public()})
	if err != nil {
		t.Fatal(err)
	}
	// A long-poll in flight when the signal arrives is released at once.
	errc := make(chan error, 1)
	go func() {
		_, err := seat.Fetch(context.Background(), 0, 20*time.Second)
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("run returned %v\n%s", err, logs.String())
	}
	if err := <-errc; !errors.Is(err, relay.ErrUnavailable) && !errors.Is(err, relay.ErrTransport) {
		t.Fatalf("pending fetch: %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("shutdown took %v", el)
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		msgs = append(msgs, rec["msg"].(string))
	}
	got := strings.Join(msgs, ",")
	for _, want := range []string{"listening", "room created", "request rejected", "shutting down", "stopped"} {
		if !strings.Contains(got, want) {
			t.Errorf("logs lack %q: %s", want, got)
		}
	}
}

func TestRunTLSWithClientCerts(t *testing.T) {
	pki := testkit.NewRelayPKI(t)
	addr, stop, logs := startRun(t, []string{"-tls-cert", pki.ServerCertFile, "-tls-key", pki.ServerKeyFile}, map[string]string{
		"QUORUM_RELAY_TLS_CLIENT_CA": pki.CAFile,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name     string
		withCert bool
	}{{"with client cert", true}, {"without client cert", false}} {
		c, err := relay.NewClient(addr, relay.ClientConfig{TLS: pki.ClientTLS(tc.withCert)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.CreateRoom(ctx, 2)
		c.Close()
		if tc.withCert != (err == nil) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
}

func TestRunBadConfig(t *testing.T) {
	tests := [][]string{
		{"-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem"},
		{"-log-level", "loud"},
		{"-listen", "256.0.0.1:0"},
		{"-default-ttl", "2h", "-max-ttl", "1h"},
	}
	for _, args := range tests {
		var out bytes.Buffer
		if err := run(context.Background(), args, func(string) string { return "" }, &out, nil); err == nil {
			t.Errorf("%v: run succeeded", args)
		}
	}
}
