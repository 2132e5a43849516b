package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// importPlan is one import ceremony across len(Parties) daemons.
type importPlan struct {
	Parties      []*Client
	Threshold    int
	Importer     int
	Key          *privateKey // the importer's secret; wiped by the caller
	RelayAddress string      // "" = the daemons' default relay
	// Room makes the ceremony's room; nil = POST /create-room on the
	// importer's daemon (its default relay).
	Room roomMaker
	// Encrypt sends the key HPKE-encrypted to the importer daemon's import
	// key (encrypted_private_key); EncryptKEM picks its KEM ("" = default).
	Encrypt    bool
	EncryptKEM string
	// Dealer, when set, deals the key from quorumctl itself: every daemon
	// is a recipient (Importer is ignored) and Key never leaves this process.
	Dealer *localDealer
}

// importResult is what a completed import reports.
type importResult struct {
	Threshold int           `json:"threshold"`
	N         int           `json:"n"`
	Importer  int           `json:"importer"` // -1: quorumctl dealt locally
	Daemons   []string      `json:"daemons"`
	RoomUUID  string        `json:"room_uuid"`
	KeyIDs    []string      `json:"key_ids"`
	KeygenIDs []string      `json:"keygen_ids"`
	Pubkey    string        `json:"pubkey"`
	Timing    importTimings `json:"timing_ms"`
}

type importTimings struct {
	Slots    time.Duration `json:"-"`
	Room     time.Duration `json:"-"`
	Ceremony time.Duration `json:"-"`
	SlotsMS  float64       `json:"slots"`
	RoomMS   float64       `json:"room"`
	CerMS    float64       `json:"ceremony"`
}

func (t *importTimings) fill() {
	t.SlotsMS, t.RoomMS, t.CerMS = msf(t.Slots), msf(t.Room), msf(t.Ceremony)
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func role(i, importer, n int) string {
	switch i {
	case importer:
		return "importer"
	case n:
		return "local dealer"
	}
	return "recipient"
}

// runImport performs the whole import of DESIGN §3 from the outside: a key
// slot on every daemon, the keygen_ids exchanged, a room of size N made on
// the importer's daemon, then the importer and every recipient called at
// once (each call blocks until the ceremony ends). It checks that every
// daemon answered the same pubkey and that it is the private key's.
func runImport(ctx context.Context, p importPlan, out *printer) (*importResult, error) {
	n := len(p.Parties)
	if n < 2 {
		return nil, usagef("an import needs at least 2 daemons, got %d", n)
	}
	if p.Threshold < 1 || p.Threshold > n {
		return nil, usagef("threshold must satisfy 1 <= t <= N = %d, got %d", n, p.Threshold)
	}
	if p.Dealer != nil {
		p.Importer = -1 // every daemon is a recipient
	} else if p.Importer < 0 || p.Importer >= n {
		return nil, usagef("importer index %d: want 0..%d", p.Importer, n-1)
	}
	if p.Key == nil {
		return nil, usagef("no private key")
	}
	want, err := p.Key.xonlyPubkey()
	if err != nil {
		return nil, fmt.Errorf("private key: %w", errBadPrivateKey)
	}
	res := &importResult{Threshold: p.Threshold, N: n, Importer: p.Importer,
		KeyIDs: make([]string, n), KeygenIDs: make([]string, n)}
	for _, c := range p.Parties {
		res.Daemons = append(res.Daemons, c.Base)
	}

	// 1. A key slot (and ceremony identity) on every daemon.
	start := time.Now()
	slots := make([]KeySlot, n)
	errs := parallel(ctx, n, func(ctx context.Context, i int) error {
		s, err := p.Parties[i].CreateKey(ctx)
		if err != nil {
			return err
		}
		slots[i] = s
		out.step("daemon %d: key slot %s, keygen_id %s", i, s.KeyID, s.KeygenID)
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("creating the key slot on daemon %d: %w", i, err)
	}
	res.Timing.Slots = time.Since(start)
	for i, s := range slots {
		res.KeyIDs[i], res.KeygenIDs[i] = s.KeyID, s.KeygenID
		for j := range i {
			if slots[j].KeygenID == s.KeygenID {
				return nil, fmt.Errorf("daemons %d and %d answered the same keygen_id: %w", j, i, errMismatch)
			}
		}
	}

	// 2. The room, made by the importer's daemon on its default relay (by
	// a local dealer on its relay, with a seat for the dealer).
	t0 := time.Now()
	mk := p.Room
	switch {
	case p.Dealer != nil:
		mk = p.Dealer.room
	case mk == nil:
		mk = daemonRoom(p.Parties[p.Importer], p.Importer)
	}
	room, where, err := mk(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("creating the room %s: %w", where, err)
	}
	res.RoomUUID = room
	res.Timing.Room = time.Since(t0)
	out.step("room %s for %d parties created %s", room, n, where)

	// 3. Everyone at once: each call returns only when the ceremony ends
	// (a local dealer, "party" n, once every daemon prepared).
	t0 = time.Now()
	pubs := make([][]byte, n)
	callers := n
	if p.Dealer != nil {
		callers++
	}
	errs = parallel(ctx, callers, func(ctx context.Context, i int) error {
		if i == n {
			err := p.Dealer.deal(ctx, room, res.KeygenIDs, p.Threshold, p.Key)
			if err != nil {
				out.step("local dealer failed: %v", err)
				return err
			}
			out.step("local dealer: dealt, every daemon prepared; the private key is wiped")
			return nil
		}
		req := ImportRequest{RoomUUID: room, KeyID: slots[i].KeyID, Threshold: p.Threshold,
			RelayAddress: p.RelayAddress, OthersKeygenIDs: make([]string, 0, n-1)}
		if p.Dealer != nil {
			req.DealerID = p.Dealer.dealerID()
		}
		for j, s := range slots {
			if j != i {
				req.OthersKeygenIDs = append(req.OthersKeygenIDs, s.KeygenID)
			}
		}
		var pk []byte
		var err error
		switch {
		case i == p.Importer && p.Encrypt:
			pk, err = p.Parties[i].ImportKeyEncrypted(ctx, req, slots[i].KeygenID, p.EncryptKEM, p.Key)
		case i == p.Importer:
			pk, err = p.Parties[i].ImportKey(ctx, req, p.Key)
		default:
			pk, err = p.Parties[i].ImportRecipient(ctx, req)
		}
		if err != nil {
			if errors.Is(err, context.Canceled) {
				out.step("daemon %d: %s call cancelled (another party failed)", i, role(i, p.Importer, n))
			} else {
				out.step("daemon %d: %s failed: %v", i, role(i, p.Importer, n), err)
			}
			return err
		}
		pubs[i] = pk
		out.step("daemon %d: %s done, pubkey %x", i, role(i, p.Importer, n), pk)
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("import ceremony, daemon %d (%s): %w", i, role(i, p.Importer, n), err)
	}
	res.Timing.Ceremony = time.Since(t0)
	res.Timing.fill()
	for i, pk := range pubs {
		if !bytes.Equal(pk, pubs[0]) {
			return nil, fmt.Errorf("daemon %d answered pubkey %x, daemon 0 %x: %w", i, pk, pubs[0], errMismatch)
		}
	}
	if !bytes.Equal(pubs[0], want[:]) {
		return nil, fmt.Errorf("the quorum's pubkey %x is not the private key's %x: %w", pubs[0], want, errMismatch)
	}
	res.Pubkey = hex.EncodeToString(pubs[0])
	out.step("all %d daemons agree; pubkey matches the private key", n)
	return res, nil
}

func runImportCmd(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl import", flag.ContinueOnError)
	var h httpFlags
	var q quorumFlags
	h.register(fs, 2*time.Minute)
	q.register(fs)
	threshold := fs.Int("threshold", 0, "threshold t (1 <= t <= N)")
	importer := fs.Int("importer", 0, "index in -daemons of the importer (the party holding the private key)")
	dealLocally := fs.Bool("deal-locally", false, "deal the key from quorumctl itself (needs -relay-address): every daemon is a recipient and the private key never reaches any daemon")
	privHex := fs.String("private-key", "", "private key to import, 64 hex (prefer QUORUMCTL_PRIVATE_KEY or -private-key-file)")
	privFile := fs.String("private-key-file", "", "file holding the private key in hex (mode 0600)")
	generate := fs.Bool("generate", false, "import a freshly generated private key (it is never printed)")
	relayAddr := fs.String("relay-address", "", "relay host:port for the ceremony (must be on the users' policy allowlist); default: each daemon's default relay")
	encrypt := fs.Bool("encrypt", false, "encrypt the private key to the importer daemon's HPKE import key (encrypted_private_key) instead of sending it in the clear")
	encryptKEM := fs.String("encrypt-kem", "", "with -encrypt: MLKEM768-X25519 (the daemon's default) or DHKEM-P256")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	sources := 0
	for _, set := range []bool{*privHex != "", *privFile != "", *generate} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return usagef("give exactly one of -private-key, -private-key-file and -generate")
	}
	parties, err := q.parties(&h, len(splitList(q.daemons)))
	if err != nil {
		return err
	}
	var key *privateKey
	switch {
	case *generate:
		key, err = generatePrivateKey()
	case *privFile != "":
		key, err = readPrivateKeyFile(*privFile)
	default:
		key, err = parsePrivateKeyHex(*privHex)
		if err != nil {
			err = usagef("-private-key: %v", err)
		}
	}
	if err != nil {
		return err
	}
	defer key.wipe()
	if *encryptKEM != "" && !*encrypt {
		return usagef("-encrypt-kem needs -encrypt")
	}
	plan := importPlan{Parties: parties, Threshold: *threshold, Importer: *importer, Key: key, RelayAddress: *relayAddr,
		Encrypt: *encrypt, EncryptKEM: *encryptKEM}
	if *dealLocally {
		switch {
		case *relayAddr == "":
			return usagef("-deal-locally needs -relay-address: quorumctl joins the ceremony's room as the dealer")
		case *encrypt || flagSet(fs, "importer"):
			return usagef("-deal-locally has no importer daemon: it excludes -encrypt and -importer")
		}
		d, closeDealer, err := newLocalDealer(*relayAddr)
		if err != nil {
			return err
		}
		defer closeDealer()
		plan.Dealer = d
	} else if *relayAddr != "" {
		mk, closeRelay, err := relayRoom(*relayAddr)
		if err != nil {
			return err
		}
		defer closeRelay()
		plan.Room = mk
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	out := h.printer(c)
	res, err := runImport(ctx, plan, out)
	if err != nil {
		return err
	}
	return out.result(res, func(w io.Writer) {
		fmt.Fprintf(w, "key_ids: %s\n", strings.Join(res.KeyIDs, ","))
		fmt.Fprintf(w, "pubkey: %s\n", res.Pubkey)
	})
}
