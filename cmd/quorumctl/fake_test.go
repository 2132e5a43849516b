package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/mpc/bip340"
)

// fakeQuorum is N HTTP servers speaking the daemon's JSON for the routes
// quorumctl uses, for testing quorumctl's parsing and flow logic (the real
// daemons are exercised by TestDemoScript). Like the real ceremonies, an
// import or sign call blocks until every party of its room has called, so a
// client that called the parties one after another would hang; each
// daemon checks the raw Authorization header and the exchanged keygen_ids.
// The "quorum" keeps the whole private key to produce real BIP340
// signatures: it stands in for the MPC, which is not under test here.
type fakeQuorum struct {
	t       *testing.T
	mu      sync.Mutex
	rooms   map[string]*fakeRoom
	daemons []*fakeDaemon
	wait    time.Duration // how long a party waits for the others
}

type fakeRoom struct {
	size    int
	joined  []fakeJoin
	done    chan struct{}
	failure string   // executor_result message set at completion
	priv    []byte   // import: the importer's key
	pub     []byte   // import: its x-only pubkey
	sig     []byte   // sign: the signature
	sigs    [][]byte // batch-sign: one signature per item
}

type fakeJoin struct {
	daemon   int
	keygenID string
	others   []string
	t        int
}

type fakeDaemon struct {
	q      *fakeQuorum
	idx    int
	apiKey string
	srv    *httptest.Server

	mu   sync.Mutex
	keys map[string]*fakeKey

	// Faults.
	wrongPubkey bool   // answer another pubkey after an import
	failImport  string // answer this err_type to the import call at once
	corruptSig  bool   // flip a bit of the signature
	failItem    int    // batch-sign: answer an error for this item (index+1; 0 = none)
	reqs        []string
}

type fakeKey struct {
	keygenID     string
	ready        bool
	t, n, ownID  int
	priv         []byte
	pub          []byte
	participants []string
}

func newFakeQuorum(t *testing.T, n int) *fakeQuorum {
	t.Helper()
	q := &fakeQuorum{t: t, rooms: map[string]*fakeRoom{}, wait: 10 * time.Second}
	for i := range n {
		d := &fakeDaemon{q: q, idx: i, apiKey: fmt.Sprintf("%016x.key-of-daemon-%d", i, i), keys: map[string]*fakeKey{}}
		d.srv = httptest.NewServer(d)
		t.Cleanup(d.srv.Close)
		q.daemons = append(q.daemons, d)
	}
	return q
}

func (q *fakeQuorum) urls() string {
	var u []string
	for _, d := range q.daemons {
		u = append(u, d.srv.URL)
	}
	return strings.Join(u, ",")
}

func (q *fakeQuorum) keys() string {
	var k []string
	for _, d := range q.daemons {
		k = append(k, d.apiKey)
	}
	return strings.Join(k, ",")
}

func (q *fakeQuorum) clients(t *testing.T) []*client.Client {
	hc := client.WithHTTPClient(client.NewHTTPClient(nil, 8))
	var out []*client.Client
	for _, d := range q.daemons {
		c, err := client.New(d.srv.URL, d.apiKey, hc)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func fakeUUID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]string{"err_type": typ, "err_msg": msg})
}

// decodeStrict decodes like the daemon: unknown fields are errors.
func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (d *fakeDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.reqs = append(d.reqs, r.Method+" "+r.URL.Path)
	d.mu.Unlock()
	if r.URL.Path == "/readyz" {
		writeJSON(w, 200, map[string]string{"status": "ready"})
		return
	}
	if r.Header.Get("Authorization") != d.apiKey {
		apiErr(w, 401, "access_denied", "missing, unknown or revoked API key")
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/bip340/create":
		priv, _ := btcec.NewPrivateKey()
		id := fakeUUID()
		k := &fakeKey{keygenID: hex.EncodeToString(priv.PubKey().SerializeCompressed())}
		d.mu.Lock()
		d.keys[id] = k
		d.mu.Unlock()
		writeJSON(w, 200, map[string]string{"key_id": id, "keygen_id": k.keygenID})
	case r.Method == "POST" && r.URL.Path == "/create-room":
		var req struct {
			RoomSize int `json:"room_size"`
		}
		if err := decodeStrict(r, &req); err != nil || req.RoomSize < 1 {
			apiErr(w, 400, "bad_request_params", "bad room_size")
			return
		}
		id := fakeUUID()
		d.q.mu.Lock()
		d.q.rooms[id] = &fakeRoom{size: req.RoomSize, done: make(chan struct{})}
		d.q.mu.Unlock()
		writeJSON(w, 200, map[string]string{"room_uuid": id})
	case r.Method == "POST" && (r.URL.Path == "/bip340/import/key-importer" || r.URL.Path == "/bip340/import/import-key-share-recipient"):
		d.serveImport(w, r, r.URL.Path == "/bip340/import/key-importer")
	case r.Method == "POST" && r.URL.Path == "/bip340/sign":
		d.serveSign(w, r)
	case r.Method == "POST" && r.URL.Path == "/bip340/batch-sign":
		d.serveBatchSign(w, r)
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/bip340/keys/"):
		id := strings.TrimPrefix(r.URL.Path, "/bip340/keys/")
		d.mu.Lock()
		k, ok := d.keys[id]
		d.mu.Unlock()
		if !ok {
			apiErr(w, 400, "key_id_not_exists", "key_id does not exist")
			return
		}
		rec := map[string]any{"key_id": id, "state": "created", "keygen_id": k.keygenID, "created_at": "2026-01-01T00:00:00Z"}
		if k.ready {
			rec["state"], rec["t"], rec["n"], rec["own_id"] = "ready", k.t, k.n, k.ownID
			rec["pubkey"], rec["participants"] = hex.EncodeToString(k.pub), k.participants
		}
		writeJSON(w, 200, rec)
	case r.Method == "GET" && r.URL.Path == "/admin/create-user":
		name := r.URL.Query().Get("name")
		if name == "" {
			apiErr(w, 400, "bad_request_params", `missing query parameter "name"`)
			return
		}
		writeJSON(w, 200, map[string]string{"api_key": "0123456789abcdef.new-user-key", "user_id": fakeUUID()})
	default:
		apiErr(w, 404, "not_found", "no such route")
	}
}

// join adds a party to room and waits for the others (or the client going
// away, or q.wait). complete runs once, under q.mu, when the room is full.
func (d *fakeDaemon) join(r *http.Request, roomID string, j fakeJoin, contribute func(*fakeRoom), complete func(*fakeRoom)) (*fakeRoom, string) {
	q := d.q
	q.mu.Lock()
	room, ok := q.rooms[roomID]
	if !ok {
		q.mu.Unlock()
		return nil, "unknown room"
	}
	if len(room.joined) >= room.size {
		q.mu.Unlock()
		return nil, "room full"
	}
	room.joined = append(room.joined, j)
	contribute(room)
	if len(room.joined) == room.size {
		complete(room)
		close(room.done)
	}
	q.mu.Unlock()
	select {
	case <-room.done:
	case <-r.Context().Done():
		return nil, "client went away"
	case <-time.After(q.wait):
		return nil, "timed out waiting for the other parties"
	}
	if room.failure != "" {
		return nil, room.failure
	}
	return room, ""
}

func (d *fakeDaemon) serveImport(w http.ResponseWriter, r *http.Request, importer bool) {
	var req struct {
		RoomUUID   string   `json:"room_uuid"`
		KeyID      string   `json:"key_id"`
		Threshold  int      `json:"threshold"`
		Others     []string `json:"others_keygen_ids"`
		PrivateKey string   `json:"private_key"`
	}
	if err := decodeStrict(r, &req); err != nil {
		apiErr(w, 400, "bad_request_params", "bad body: "+err.Error())
		return
	}
	if importer != (req.PrivateKey != "") {
		apiErr(w, 400, "bad_request_params", "private_key present on the wrong endpoint")
		return
	}
	if d.failImport != "" {
		apiErr(w, 400, d.failImport, "injected failure")
		return
	}
	d.mu.Lock()
	k, ok := d.keys[req.KeyID]
	d.mu.Unlock()
	if !ok {
		apiErr(w, 400, "key_id_not_exists", "key_id does not exist")
		return
	}
	if req.Threshold < 1 || req.Threshold > len(req.Others)+1 {
		apiErr(w, 400, "bad_n_and_t_params", "bad threshold")
		return
	}
	var priv []byte
	if importer {
		b, err := client.DecodeHex(req.PrivateKey, 32)
		if err != nil {
			apiErr(w, 400, "bad_request_params", "bad private_key")
			return
		}
		if _, err := bip340.ParsePrivateKey((*[32]byte)(b)); err != nil {
			apiErr(w, 400, "bad_request_params", "bad private_key")
			return
		}
		priv = b
	}
	room, fail := d.join(r, req.RoomUUID, fakeJoin{daemon: d.idx, keygenID: k.keygenID, others: req.Others, t: req.Threshold},
		func(room *fakeRoom) {
			if priv != nil {
				room.priv = priv
			}
		},
		func(room *fakeRoom) {
			var all []string
			for _, j := range room.joined {
				all = append(all, j.keygenID)
			}
			slices.Sort(all)
			for _, j := range room.joined {
				mine := append(slices.Clone(j.others), j.keygenID)
				slices.Sort(mine)
				if !slices.Equal(mine, all) || j.t != room.joined[0].t {
					room.failure = fmt.Sprintf("daemon %d disagrees on the participants or t", j.daemon)
				}
			}
			if room.priv == nil {
				room.failure = "no importer in the room"
				return
			}
			sc, _ := bip340.ParsePrivateKey((*[32]byte)(room.priv))
			x, _ := bip340.PublicKey(sc)
			room.pub = x[:]
		})
	if fail != "" {
		apiErr(w, 400, "executor_result", fail)
		return
	}
	var all []string
	for _, j := range room.joined {
		all = append(all, j.keygenID)
	}
	slices.Sort(all)
	d.mu.Lock()
	k.ready, k.t, k.n, k.priv, k.pub, k.participants = true, req.Threshold, len(all), room.priv, room.pub, all
	k.ownID = slices.Index(all, k.keygenID)
	d.mu.Unlock()
	pub := room.pub
	if d.wrongPubkey {
		pub = bytes.Repeat([]byte{0x42}, 32)
	}
	writeJSON(w, 200, map[string]string{"key_id": req.KeyID, "pubkey": hex.EncodeToString(pub)})
}

func (d *fakeDaemon) serveSign(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RoomUUID string `json:"room_uuid"`
		KeyID    string `json:"key_id"`
		Msg      string `json:"msg"`
	}
	if err := decodeStrict(r, &req); err != nil {
		apiErr(w, 400, "bad_request_params", "bad body: "+err.Error())
		return
	}
	d.mu.Lock()
	k, ok := d.keys[req.KeyID]
	d.mu.Unlock()
	if !ok {
		apiErr(w, 400, "key_id_not_exists", "key_id does not exist")
		return
	}
	if !k.ready {
		apiErr(w, 400, "key_operation_before_keygen", "the key has no share yet")
		return
	}
	msg, err := hex.DecodeString(req.Msg)
	if err != nil {
		apiErr(w, 400, "bad_request_params", "msg is not hex")
		return
	}
	room, fail := d.join(r, req.RoomUUID, fakeJoin{daemon: d.idx, keygenID: k.keygenID, t: k.t},
		func(*fakeRoom) {},
		func(room *fakeRoom) {
			if len(room.joined) < k.t {
				room.failure = "fewer signers than t"
				return
			}
			sc, _ := bip340.ParsePrivateKey((*[32]byte)(k.priv))
			sig, err := bip340.Sign(sc, msg, [32]byte{})
			if err != nil {
				room.failure = err.Error()
				return
			}
			room.sig = sig[:]
		})
	if fail != "" {
		apiErr(w, 400, "executor_result", fail)
		return
	}
	sig := slices.Clone(room.sig)
	if d.corruptSig {
		sig[63] ^= 1
	}
	writeJSON(w, 200, map[string]string{"signature": hex.EncodeToString(sig)})
}
