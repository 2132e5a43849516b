package ceremony

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// TestMain lets the test binary act as one ceremony party in a child
// process (TestImportAcrossProcesses).
func TestMain(m *testing.M) {
	if os.Getenv("QUORUMD_CEREMONY_CHILD") == "1" {
		os.Exit(childRecipient())
	}
	os.Exit(m.Run())
}

func childRecipient() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child:", err); return 1 }
	privB, err := hex.DecodeString(os.Getenv("CHILD_PRIV"))
	if err != nil || len(privB) != 32 {
		return fail(fmt.Errorf("bad CHILD_PRIV"))
	}
	var k btcec.ModNScalar
	k.SetByteSlice(privB)
	id, err := envelope.NewIdentity(&k)
	k.Zero()
	if err != nil {
		return fail(err)
	}
	var others []envelope.Party
	for _, h := range strings.Split(os.Getenv("CHILD_OTHERS"), ",") {
		b, _ := hex.DecodeString(h)
		p, err := envelope.ParseParty(b)
		if err != nil {
			return fail(err)
		}
		others = append(others, p)
	}
	thr, _ := strconv.Atoi(os.Getenv("CHILD_T"))
	c, err := relay.NewClient(os.Getenv("CHILD_RELAY"), relay.ClientConfig{})
	if err != nil {
		return fail(err)
	}
	room := os.Getenv("CHILD_ROOM")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	info, err := Import(ctx, ImportParams{Room: room, Identity: id, Others: others, Threshold: thr,
		Transport: RelayTransport(c, room, id, append([]envelope.Party{id.Public()}, others...))}, &memDurable{})
	if err != nil {
		return fail(err)
	}
	x := info.XOnly()
	fmt.Printf("pubkey %x\n", x[:])
	return 0
}

// TestImportAcrossProcesses runs a 2-of-3 import with the relay and one
// recipient in their own processes.
func TestImportAcrossProcesses(t *testing.T) {
	addr := testkit.RelayProcess(t)
	q := newQuorum(t, addr, 3)
	room := q.room(3)
	x := randomScalar(t)
	child := 2
	priv := q.ids[child].PrivateBytes()
	var others []string
	for _, p := range q.others(child) {
		others = append(others, hex.EncodeToString(p[:]))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "QUORUMD_CEREMONY_CHILD=1",
		"CHILD_PRIV="+hex.EncodeToString(priv[:]), "CHILD_OTHERS="+strings.Join(others, ","),
		"CHILD_T=2", "CHILD_RELAY="+addr, "CHILD_ROOM="+room)
	clear(priv[:])
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// The other two parties run here, through the same relay process.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	for _, i := range []int{0, 1} {
		p := ImportParams{Room: room, Identity: q.ids[i], Others: q.others(i), Threshold: 2,
			Transport: RelayTransport(q.client, room, q.ids[i], append([]envelope.Party{q.ids[i].Public()}, q.others(i)...))}
		if i == 0 {
			xc := *x
			p.PrivateKey = &xc
		}
		go func() {
			_, err := Import(ctx, p, &memDurable{})
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	want := xonly(x)
	if got := strings.TrimSpace(stdout.String()); got != fmt.Sprintf("pubkey %x", want[:]) {
		t.Fatalf("child printed %q, want pubkey %x", got, want[:])
	}
}
