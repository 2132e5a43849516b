package relay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// jsRelays starts n relay instances over one throwaway nats-server.
func jsRelays(t *testing.T, n int, intercept ...relay.InterceptFunc) ([]*relay.Server, []string) {
	t.Helper()
	url, _ := testkit.NATSServer(t)
	srvs := make([]*relay.Server, n)
	addrs := make([]string, n)
	for i := range n {
		cfg := relay.Config{Name: "relay.test", NATS: &relay.NATSConfig{URL: url, Memory: true}}
		if i < len(intercept) {
			cfg.Intercept = intercept[i]
		}
		srvs[i], addrs[i] = testkit.RelayServer(t, cfg)
	}
	return srvs, addrs
}

// TestJetStreamAcrossInstances: one room served by two instances: seats
// taken at either, a post at one wakes a long-poll at the other, seats are
// still required, and leaving at either closes the room.
func TestJetStreamAcrossInstances(t *testing.T) {
	_, addrs := jsRelays(t, 2)
	ca, cb := newClient(t, addrs[0]), newClient(t, addrs[1])
	ctx := ctxT(t)
	ids, members := newIdentities(t, 2)
	room := mustRoom(t, ca, 2)
	if info, err := cb.RoomInfo(ctx, room); err != nil || info.Size != 2 {
		t.Fatalf("room info at the other instance: %v %+v", err, info)
	}
	a, err := ca.TakeSeat(ctx, room, ids[0], members)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cb.TakeSeat(ctx, room, ids[1], members)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != 2 || b.Size != 2 {
		t.Fatalf("claims answered room sizes %d and %d, want 2", a.Size, b.Size)
	}
	got := make(chan []relay.Message, 1)
	go func() {
		msgs, err := b.Fetch(ctx, 0, 20*time.Second)
		if err != nil {
			t.Errorf("fetch at B: %v", err)
		}
		got <- msgs
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if _, err := a.Post(ctx, b.Party, []byte("across")); err != nil {
		t.Fatal(err)
	}
	if msgs := <-got; len(msgs) != 1 || string(msgs[0].Body) != "across" || msgs[0].From != a.Party {
		t.Fatalf("b got %+v", msgs)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("long-poll at B not woken by the post at A (%v)", el)
	}
	if _, err := a.Post(ctx, "", []byte("bcast")); err != nil {
		t.Fatal(err)
	}
	if msgs, err := b.Fetch(ctx, 0, 0); err != nil || len(msgs) != 2 {
		t.Fatalf("b fetch from the start: %v %+v", err, msgs)
	}
	if msgs, err := a.Fetch(ctx, 0, 0); err != nil || len(msgs) != 0 {
		t.Fatalf("a sees its own: %v %+v", err, msgs)
	}
	if status, code, _ := rawReq(t, "GET", "http://"+addrs[1]+"/v1/rooms/"+room+"/messages", ""); status != 401 || code != relay.CodeSeatRequired {
		t.Fatalf("no seat at B: %d %s", status, code)
	}
	if _, err := cb.TakeSeat(ctx, room, impostor{as: members[0], key: ids[1]}, members); !errors.Is(err, relay.ErrSeat) {
		t.Fatalf("impostor at B: %v", err)
	}
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.RoomInfo(ctx, room); !errors.Is(err, relay.ErrRoomExpired) {
		t.Fatalf("room after both left: %v", err)
	}
}

// TestJetStreamFailoverMidCeremony: a 2-of-3 import runs through two
// instances; the instance the parties use first is shut down mid-ceremony
// (after the first envelopes). The parties carry on through the other one,
// the import completes, and a signature follows with the instance gone.
func TestJetStreamFailoverMidCeremony(t *testing.T) {
	var victim atomic.Pointer[relay.Server]
	var posts atomic.Int32
	killed := make(chan struct{})
	kill := func(room, from, to string, body []byte) ([]byte, bool) {
		if posts.Add(1) == 2 {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = victim.Load().Shutdown(ctx)
				close(killed)
			}()
		}
		return nil, false
	}
	srvs, addrs := jsRelays(t, 2, kill)
	victim.Store(srvs[0])
	both := addrs[0] + "," + addrs[1]
	ids, members := newIdentities(t, 3)
	clients := make([]*relay.Client, 3)
	for i := range clients {
		clients[i] = newClient(t, both, relay.ClientConfig{PollChunk: 2 * time.Second})
	}
	room := mustRoom(t, clients[0], 3)

	x := new(btcec.ModNScalar)
	x.SetInt(777)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	infos := make([]*ceremony.KeyInfo, 3)
	shares := make([]btcec.ModNScalar, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, id := range ids {
		var others []envelope.Party
		for j, m := range members {
			if j != i {
				others = append(others, m)
			}
		}
		tr := ceremony.RelayTransport(clients[i], room, id, members)
		p := ceremony.ImportParams{Room: room, Identity: id, Others: others, Threshold: 2, Transport: tr}
		if i == 0 {
			xc := *x
			p.PrivateKey = &xc
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			infos[i], errs[i] = ceremony.Import(ctx, p, keepShare{&shares[i]})
		}()
	}
	wg.Wait()
	select {
	case <-killed:
	case <-time.After(10 * time.Second):
		t.Fatalf("the first instance was never shut down (%d posts seen)", posts.Load())
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("party %d import across the failover: %v", i, err)
		}
		if infos[i].XOnly() != schnorrKey(x) {
			t.Fatalf("party %d imported another key", i)
		}
	}
	for i, c := range clients {
		if c.BaseURL() != "http://"+addrs[1] {
			t.Errorf("client %d still on %s", i, c.BaseURL())
		}
	}

	signRoom := mustRoom(t, clients[1], 2)
	sigs := make([][64]byte, 2)
	for j, i := range []int{1, 2} {
		tr := ceremony.RelayTransport(clients[i], signRoom, ids[i], infos[i].Parties)
		wg.Add(1)
		go func() {
			defer wg.Done()
			share := shares[i]
			sigs[j], errs[j] = ceremony.Sign(ctx, ceremony.SignParams{Room: signRoom, Identity: ids[i], Key: infos[i],
				Share: &share, Signers: 2, Msg: []byte("after failover"), Transport: tr})
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || sigs[0] != sigs[1] {
		t.Fatalf("signing after failover: %v %v", errs[0], errs[1])
	}
}

// metricValue reads one unlabelled sample from a relay's /metrics.
func metricValue(addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// TestJetStreamInstanceKilled: two quorum-relay processes over one
// nats-server; the one every party uses first is SIGKILLed once the
// import's first envelopes went through it. The import completes through
// the survivor.
func TestJetStreamInstanceKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts quorum-relay processes")
	}
	url, _ := testkit.NATSServer(t)
	args := []string{"-name", "relay.test", "-nats-url", url, "-nats-memory"}
	addrA, killA := testkit.RelayProcessKillable(t, args...)
	addrB := testkit.RelayProcess(t, args...)
	ids, members := newIdentities(t, 3)
	clients := make([]*relay.Client, 3)
	for i := range clients {
		clients[i] = newClient(t, addrA+","+addrB, relay.ClientConfig{PollChunk: 2 * time.Second})
	}
	room := mustRoom(t, clients[0], 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	x := new(btcec.ModNScalar)
	x.SetInt(991)
	infos := make([]*ceremony.KeyInfo, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, id := range ids {
		var others []envelope.Party
		for j, m := range members {
			if j != i {
				others = append(others, m)
			}
		}
		tr := ceremony.RelayTransport(clients[i], room, id, members)
		p := ceremony.ImportParams{Room: room, Identity: id, Others: others, Threshold: 2, Transport: tr}
		if i == 0 {
			xc := *x
			p.PrivateKey = &xc
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			infos[i], errs[i] = ceremony.Import(ctx, p, keepShare{new(btcec.ModNScalar)})
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n, err := metricValue(addrA, "quorum_relay_messages_total"); err == nil && n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no envelope reached the first instance")
		}
		time.Sleep(time.Millisecond)
	}
	killA()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("party %d import across the crash: %v", i, err)
		}
		if infos[i].XOnly() != schnorrKey(x) {
			t.Fatalf("party %d imported another key", i)
		}
	}
	if _, err := http.Get("http://" + addrA + "/healthz"); err == nil {
		t.Fatal("the killed instance still answers")
	}
	// Every client starts on A: envelopes posted at B came after the kill,
	// so the crash really fell mid-ceremony.
	if n, err := metricValue(addrB, "quorum_relay_messages_total"); err != nil || n < 1 {
		t.Fatalf("no envelope went through the survivor (%v, %v): the kill came too late", n, err)
	}
}

// TestJetStreamLimits: the stream's limits answer like the in-memory ones.
func TestJetStreamLimits(t *testing.T) {
	url, _ := testkit.NATSServer(t)
	addr := testkit.Relay(t, relay.Config{Name: "relay.test", NATS: &relay.NATSConfig{URL: url, Memory: true},
		MaxRoomMessages: 3, MaxTotalMessages: 5, MaxEnvelopeBytes: 1024})
	c := newClient(t, addr)
	r1, r2 := mustRoom(t, c, 2), mustRoom(t, c, 2)
	for range 3 {
		mustPost(t, c, r1, party(1), "", "x")
	}
	if err := postAs(c, ctxT(t), r1, party(1), "", []byte("4th")); !errors.Is(err, relay.ErrRoomMessageLimit) {
		t.Fatalf("4th envelope in a room: %v", err)
	}
	for range 2 {
		mustPost(t, c, r2, party(1), "", "x")
	}
	var re *relay.Error
	if err := postAs(c, ctxT(t), r2, party(2), "", []byte("6th")); !errors.As(err, &re) || re.Code != relay.CodeStorageFull {
		t.Fatalf("6th envelope in all: %v", err)
	}
	if err := postAs(c, ctxT(t), r2, party(2), "", make([]byte, 1025)); !errors.Is(err, relay.ErrTooLarge) {
		t.Fatalf("oversized envelope: %v", err)
	}
	// Closing r1 purges its envelopes: room for more in r2.
	if err := leaveAs(c, ctxT(t), r1, party(1)); err != nil {
		t.Fatal(err)
	}
	mustPost(t, c, r2, party(2), "", "after the purge")
}
