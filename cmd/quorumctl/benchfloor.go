package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// The floor is what a ceremony through the daemons cannot go below on this
// machine: the ceremony code itself run in one process over a free
// transport (every party's crypto, on the cores the daemons share), plus
// the parts it must wait for, each measured here: relay deliveries, an HSM
// seal or open, an fsync on the store's file system, an HTTP round trip to
// a daemon. Each component is the median of repeated runs, so a floor and a
// real run measured together share the machine's noise.

// floorOpts say what to measure against.
type floorOpts struct {
	config  string // a daemon's YAML: its HSM token and state_dir
	relay   string // the relay's base URL
	t, n, u int    // the import's t-of-n, the signers u
	budget  time.Duration
}

// floorReport holds the measured components (medians) and the floors.
type floorReport struct {
	T, N, Signers int
	CPUs          int

	ImportCrypto, SignCrypto time.Duration // in-process ceremony, wall time
	ImportCPU, SignCPU       time.Duration // process CPU time of the same; the floor takes the smaller
	RelayDelivery            time.Duration // one message to a party already waiting (ping-pong / 2)
	RoomCreate               time.Duration // a room created at the relay
	HTTP                     time.Duration // GET /healthz of a daemon
	HSMSeal, HSMOpen         time.Duration
	HSMDataKey               time.Duration // a per-key data key made on the token (key-slot creation)
	HSMDataKeyCPU            time.Duration // process CPU time of the same (SoftHSM runs in the caller's process)
	Fsync                    time.Duration // a 4 KiB rewrite + fsync in state_dir

	Import      time.Duration // the import calls, first request to last 200
	ImportWhole time.Duration // slots, room and the import calls
	Sign        time.Duration // room and the signing calls

	// Throughputs NumCPU cores allow by the same arithmetic: cores over the
	// CPU one operation needs (ceremony crypto and the HSM operations of
	// every party; relay, HTTP and store CPU not counted, an fsync shared by
	// group commit); imports also at most one data key creation at a time.
	ImportPerS, SignPerS float64
}

func (f *floorReport) derive() {
	imp, sig := min(f.ImportCrypto, f.ImportCPU), min(f.SignCrypto, f.SignCPU)
	f.Import = imp + 2*f.RelayDelivery + f.HSMSeal + f.Fsync + f.HTTP
	slots := f.HTTP + f.HSMDataKey + f.HSMSeal + f.Fsync
	room := f.HTTP + f.RoomCreate
	f.ImportWhole = slots + room + f.Import
	f.Sign = room + sig + 2*f.RelayDelivery + f.HSMOpen + f.HTTP
	cores := float64(f.CPUs)
	if c := f.importCPU(); c > 0 {
		f.ImportPerS = cores / c.Seconds()
	}
	// A token makes one data key at a time, and each daemon one per import.
	if f.HSMDataKey > 0 {
		f.ImportPerS = min(f.ImportPerS, 1/f.HSMDataKey.Seconds())
	}
	if c := f.signCPU(); c > 0 {
		f.SignPerS = cores / c.Seconds()
	}
}

// importCPU is the CPU a whole import needs by the floor's arithmetic: the
// ceremony of every party, and a seal per party for its slot and its share.
func (f *floorReport) importCPU() time.Duration {
	return f.ImportCPU + time.Duration(2*f.N)*f.HSMSeal
}

// signCPU is the CPU a signature needs by the floor's arithmetic: the
// ceremony of every signer and an HSM open each.
func (f *floorReport) signCPU() time.Duration {
	return f.SignCPU + time.Duration(f.Signers)*f.HSMOpen
}

func (f *floorReport) human(w io.Writer) {
	fmt.Fprintf(w, "floor components (medians), %d-of-%d, %d signers, %d CPUs:\n", f.T, f.N, f.Signers, f.CPUs)
	fmt.Fprintf(w, "  import ceremony crypto (all parties, in-process) %s (CPU %s)\n", ms(f.ImportCrypto), ms(f.ImportCPU))
	fmt.Fprintf(w, "  sign ceremony crypto (all signers, in-process)   %s (CPU %s)\n", ms(f.SignCrypto), ms(f.SignCPU))
	fmt.Fprintf(w, "  relay delivery %s, room creation %s, HTTP round trip %s\n", ms(f.RelayDelivery), ms(f.RoomCreate), ms(f.HTTP))
	fmt.Fprintf(w, "  HSM seal %s, open %s, data key creation %s; fsync in state_dir %s\n", ms(f.HSMSeal), ms(f.HSMOpen), ms(f.HSMDataKey), ms(f.Fsync))
	if f.HSMDataKeyCPU > 0 {
		fmt.Fprintf(w, "  HSM data key creation CPU %s (in the caller: a daemon, per party of an import)\n", ms(f.HSMDataKeyCPU))
	}
	fmt.Fprintf(w, "floor: import calls %s, whole import %s, sign %s\n", ms(f.Import), ms(f.ImportWhole), ms(f.Sign))
	fmt.Fprintf(w, "floor throughput (%d cores): %.0f imports/s, %.0f signatures/s\n", f.CPUs, f.ImportPerS, f.SignPerS)
}

func runBenchFloorCmd(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl bench floor", flag.ContinueOnError)
	var h httpFlags
	var q quorumFlags
	var o floorOpts
	h.register(fs, 10*time.Minute)
	q.register(fs)
	o.register(fs, true)
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	parties, err := benchParties(ctx, &q, &h, 4, 1)
	if err != nil {
		return err
	}
	if o.u == 0 {
		o.u = o.t
	}
	if o.n == 0 {
		o.n = len(parties)
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	f, err := measureFloor(ctx, c, &o, parties[0])
	if err != nil {
		return err
	}
	out := h.printer(c)
	return out.result(f, f.human)
}

// register adds the floor's flags; withShape adds t, n and u too (bench
// all takes them from its load flags).
func (o *floorOpts) register(fs *flag.FlagSet, withShape bool) {
	fs.StringVar(&o.config, "config", "", "a daemon's config file (its HSM token and state_dir are measured)")
	fs.StringVar(&o.relay, "relay", "", "the relay's address (host:port or URL)")
	if withShape {
		fs.IntVar(&o.t, "threshold", 2, "threshold t")
		fs.IntVar(&o.n, "n", 0, "parties n (default: the number of daemons)")
		fs.IntVar(&o.u, "signers-n", 0, "signers u (default t)")
	}
	fs.DurationVar(&o.budget, "floor-time", 2*time.Second, "time spent on each floor component (at least 5 runs)")
}

// measureFloor measures every component; d is one of the daemons.
func measureFloor(ctx context.Context, c *cli, o *floorOpts, d *client.Client) (*floorReport, error) {
	if o.config == "" || o.relay == "" {
		return nil, usagef("the floor needs -config (a daemon's config) and -relay")
	}
	if o.t < 1 || o.n < o.t || o.u < o.t || o.u > o.n || o.n > 1000 {
		return nil, usagef("want 1 ≤ t ≤ u ≤ n ≤ 1000, have t %d u %d n %d", o.t, o.u, o.n)
	}
	cfg, _, err := daemon.LoadConfig(o.config, c.environ)
	if err != nil {
		return nil, err
	}
	f := &floorReport{T: o.t, N: o.n, Signers: o.u, CPUs: runtime.NumCPU()}
	if f.ImportCrypto, f.ImportCPU, f.SignCrypto, f.SignCPU, err = measureCeremonies(ctx, o); err != nil {
		return nil, fmt.Errorf("in-process ceremonies: %w", err)
	}
	if f.RelayDelivery, f.RoomCreate, err = measureRelay(ctx, relayURL(o.relay), o.budget); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	if f.HTTP, err = medianOf(ctx, o.budget, 10000, func() error { return d.Probe(ctx, "/healthz") }); err != nil {
		return nil, fmt.Errorf("daemon %s: %w", d.Base(), err)
	}
	if f.HSMSeal, f.HSMOpen, f.HSMDataKey, f.HSMDataKeyCPU, err = measureHSM(ctx, cfg.HSM, o.budget); err != nil {
		return nil, fmt.Errorf("HSM: %w", err)
	}
	if f.Fsync, err = measureFsync(ctx, cfg.StateDir, o.budget); err != nil {
		return nil, fmt.Errorf("fsync in %s: %w", cfg.StateDir, err)
	}
	f.derive()
	return f, nil
}

// medianOf runs op for about budget (at least 5 times, at most limit) and
// returns the median duration.
func medianOf(ctx context.Context, budget time.Duration, limit int, op func() error) (time.Duration, error) {
	var ds []time.Duration
	end := time.Now().Add(budget)
	for len(ds) < 5 || (time.Now().Before(end) && len(ds) < limit) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		t0 := time.Now()
		if err := op(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

// measureHSM seals and opens random bytes under the daemon's token and key
// (a separate session; nothing is stored), and makes and destroys a few
// per-key data keys as key-slot creation makes them.
func measureHSM(ctx context.Context, c daemon.HSMConfig, budget time.Duration) (seal, open, dataKey, dataKeyCPU time.Duration, err error) {
	if c.SlotNumber != nil {
		c.TokenLabel = ""
	}
	h, err := hsm.Open(hsm.Config{ModulePath: c.Module, TokenLabel: c.TokenLabel, SlotNumber: c.SlotNumber,
		PINFile: c.PINFile, PINEnv: c.PINEnv, KeyLabel: c.KeyLabel, ReadKeyLabels: c.ReadKeyLabels,
		MaxSessions: c.MaxSessions})
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer h.Close()
	secret := make([]byte, 32)
	rand.Read(secret)
	aad := []byte("quorumctl bench floor")
	var blob []byte
	seal, err = medianOf(ctx, budget/3, 10000, func() (err error) {
		blob, err = h.Seal(secret, aad)
		return err
	})
	if err != nil {
		return 0, 0, 0, 0, err
	}
	open, err = medianOf(ctx, budget/3, 10000, func() error {
		pt, err := h.Open(blob, aad)
		clear(pt)
		return err
	})
	if err != nil {
		return 0, 0, 0, 0, err
	}
	var made []string
	defer func() {
		for _, id := range made {
			if derr := h.DestroyDataKey(id); derr != nil && err == nil {
				err = derr
			}
		}
	}()
	dataKey, dataKeyCPU, err = medianCPU(ctx, budget/3, 20, func() error {
		var b [8]byte
		rand.Read(b[:])
		id := fmt.Sprintf("bench-floor-%x", b)
		made = append(made, id)
		// As /bip340/create and the daemon's pool make one: for a key_id
		// just minted, without searching the token for it.
		return h.CreateNewDataKey(id)
	})
	return seal, open, dataKey, dataKeyCPU, err
}

// measureFsync rewrites one 4 KiB page of a scratch file in dir and fsyncs
// it, as a store commit does at least once.
func measureFsync(ctx context.Context, dir string, budget time.Duration) (time.Duration, error) {
	f, err := os.CreateTemp(dir, ".quorumctl-bench-fsync-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 4096)
	if _, err := f.Write(page); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	i := 0
	return medianOf(ctx, budget, 10000, func() error {
		i++
		page[0] = byte(i)
		if _, err := f.WriteAt(page, 0); err != nil {
			return err
		}
		return f.Sync()
	})
}

// measureRelay measures one delivery to a party already long-polling (half
// a ping-pong between two seats of a room) and a room's creation.
func measureRelay(ctx context.Context, addr string, budget time.Duration) (delivery, create time.Duration, err error) {
	rc, err := relay.NewClient(addr, relay.ClientConfig{})
	if err != nil {
		return 0, 0, err
	}
	defer rc.Close()
	// Few rooms: relays limit how fast one client creates them.
	create, err = medianOf(ctx, budget/4, 40, func() error {
		_, err := rc.CreateRoom(ctx, 2)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	room, err := rc.CreateRoom(ctx, 2)
	if err != nil {
		return 0, 0, err
	}
	ida, err := envelope.GenerateIdentity()
	if err != nil {
		return 0, 0, err
	}
	defer ida.Zero()
	idb, err := envelope.GenerateIdentity()
	if err != nil {
		return 0, 0, err
	}
	defer idb.Zero()
	a, b := ida.Public(), idb.Public()
	members := []envelope.Party{a, b}
	ta, tb := ceremony.RelayTransport(rc, room, ida, members), ceremony.RelayTransport(rc, room, idb, members)
	defer ta.Leave(context.WithoutCancel(ctx))
	defer tb.Leave(context.WithoutCancel(ctx))
	ectx, stop := context.WithCancel(ctx)
	defer stop()
	echoed := make(chan error, 1)
	go func() { // b answers every message
		for {
			m, err := tb.Recv(ectx)
			if err == nil {
				err = tb.Send(ectx, a, m)
			}
			if err != nil {
				echoed <- err
				return
			}
		}
	}()
	msg := make([]byte, 256)
	// Each round trip leaves two envelopes in the room, and a relay keeps at
	// most 10,000 a room (room_message_limit): stay well under it, since a
	// quiet machine fits more round trips in the budget.
	rtt, err := medianOf(ctx, budget*3/4, 4000, func() error {
		if err := ta.Send(ctx, b, msg); err != nil {
			return err
		}
		_, err := ta.Recv(ctx)
		return err
	})
	stop()
	if err != nil {
		return 0, 0, err
	}
	if err := <-echoed; err != nil && !errors.Is(err, context.Canceled) && ectx.Err() == nil {
		return 0, 0, err
	}
	return rtt / 2, create, nil
}

// measureCeremonies runs t-of-n imports and u-signer signatures with the
// ceremony code in this process over a transport that costs nothing: the
// crypto every party does, on this machine's cores.
func measureCeremonies(ctx context.Context, o *floorOpts) (imp, impCPU, sig, sigCPU time.Duration, err error) {
	ids := make([]*envelope.Identity, o.n)
	for i := range ids {
		if ids[i], err = envelope.GenerateIdentity(); err != nil {
			return
		}
	}
	defer func() {
		for _, id := range ids {
			id.Zero()
		}
	}()
	var keys []*memDurable
	room := 0
	imp, impCPU, err = medianCPU(ctx, o.budget, 10000, func() error {
		room++
		var err error
		keys, err = memImport(ctx, fmt.Sprintf("floor-import-%d", room), ids, o.t)
		return err
	})
	if err != nil {
		return
	}
	defer func() {
		for _, k := range keys {
			k.share.Zero()
		}
	}()
	sig, sigCPU, err = medianCPU(ctx, o.budget, 10000, func() error {
		room++
		return memSign(ctx, fmt.Sprintf("floor-sign-%d", room), ids[:o.u], keys[:o.u])
	})
	return
}

// medianCPU is medianOf that also returns the median process CPU time.
// The floor takes the smaller of the two: CPU time is what the crypto needs
// of this machine's cores, wall time adds the waits for them that a loaded
// machine imposes.
func medianCPU(ctx context.Context, budget time.Duration, limit int, op func() error) (wall, cpu time.Duration, err error) {
	var cpus []time.Duration
	wall, err = medianOf(ctx, budget, limit, func() error {
		c0 := processCPU()
		err := op()
		cpus = append(cpus, processCPU()-c0)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	slices.Sort(cpus)
	return wall, cpus[len(cpus)/2], nil
}

// memImport runs one import of a fresh key among ids (party 0 deals).
func memImport(ctx context.Context, room string, ids []*envelope.Identity, t int) ([]*memDurable, error) {
	n := len(ids)
	hub := ceremony.NewMemoryRoom(ids, 16*len(ids)+16)
	out := make([]*memDurable, n)
	errs := make([]error, n)
	done := make(chan int, n)
	for i, id := range ids {
		out[i] = &memDurable{}
		p := ceremony.ImportParams{Room: room, Identity: id, Threshold: t, Transport: hub.Transport(i)}
		for j, o := range ids {
			if j != i {
				p.Others = append(p.Others, o.Public())
			}
		}
		if i == 0 {
			k, err := generatePrivateKey()
			if err != nil {
				return nil, err
			}
			var x btcec.ModNScalar
			x.SetBytes(&k.b)
			k.wipe()
			p.PrivateKey = &x
		}
		go func() {
			_, errs[i] = ceremony.Import(ctx, p, out[i])
			done <- i
		}()
	}
	for range n {
		<-done
	}
	return out, errors.Join(errs...)
}

// memSign signs a random message with the signers ids (whose keys are keys).
func memSign(ctx context.Context, room string, ids []*envelope.Identity, keys []*memDurable) error {
	u := len(ids)
	hub := ceremony.NewMemoryRoom(ids, 16*len(ids)+16)
	msg := make([]byte, 32)
	rand.Read(msg)
	errs := make([]error, u)
	done := make(chan int, u)
	for i, id := range ids {
		p := ceremony.SignParams{Room: room, Identity: id, Key: keys[i].info, Share: &keys[i].share,
			Signers: u, Msg: msg, Certificate: keys[i].cert, Transport: hub.Transport(i)}
		go func() {
			_, errs[i] = ceremony.Sign(ctx, p)
			done <- i
		}()
	}
	for range u {
		<-done
	}
	return errors.Join(errs...)
}

// memDurable keeps an in-process ceremony's outcome in memory.
type memDurable struct {
	share btcec.ModNScalar
	info  *ceremony.KeyInfo
	cert  ceremony.Certificate
}

func (m *memDurable) Prepare(ks *ceremony.KeyShare, _ *ceremony.RecoveryData) error {
	m.share = ks.Share
	info := ks.KeyInfo
	m.info = &info
	return nil
}

func (m *memDurable) Certified(_ *ceremony.KeyInfo, rd *ceremony.RecoveryData) error {
	m.cert = rd.Cert
	return nil
}

func (m *memDurable) Discard(*ceremony.KeyInfo) error { return nil }

func (m *memDurable) Refused(*ceremony.KeyInfo, envelope.Party) error { return nil }
