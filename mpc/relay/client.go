package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// Client defaults.
const (
	DefaultRequestTimeout      = 10 * time.Second
	DefaultPollChunk           = 25 * time.Second
	DefaultMaxIdleConnsPerHost = 128
	// DefaultMaxResponseBytes bounds one answer: a fetch asks the relay
	// for at most this much (max_bytes), and one envelope of the default
	// 1 MiB limit fits base64-encoded with room to spare.
	DefaultMaxResponseBytes = 4 << 20
)

// ClientConfig tunes a Client; zero fields take defaults.
type ClientConfig struct {
	// TLS is used for https base URLs (root CAs, optional client certificate).
	TLS *tls.Config
	// RequestTimeout bounds each request; long-polls get wait + RequestTimeout.
	RequestTimeout time.Duration
	// PollChunk is the longest single long-poll Conn.Recv issues; it must not
	// exceed the relay's MaxWait (30 s by default).
	PollChunk time.Duration
	// MaxConnsPerHost caps connections to the relay (0 = unlimited). Every
	// waiting Recv holds one connection.
	MaxConnsPerHost     int
	MaxIdleConnsPerHost int
	// MaxResponseBytes caps what is read from one relay answer; fetches ask
	// the relay to fit their answers in it. At least 64 KiB.
	MaxResponseBytes int64
	// RelayName, when set, is the relay name seat claims are signed for;
	// otherwise the client asks the relay (GET /v1/info) once.
	RelayName string
	// Transport replaces the built-in pooled transport (TLS and the
	// connection limits above are then ignored).
	Transport http.RoundTripper
	// OnRequest, when set, is called after each request to the relay
	// (answered or failed) with its method, path without the query, and
	// start time: a hook for traces and latency metrics, whatever the
	// transport. It must be quick and safe for concurrent use.
	OnRequest func(method, path string, start time.Time)
}

// expectThreshold is the body size above which requests announce
// Expect: 100-continue; small envelopes skip the extra round trip.
const expectThreshold = 32 << 10

// Client talks to one relay over HTTP/1.1 with pooled keep-alive connections.
// It is safe for concurrent use. The relay is untrusted: answers are checked
// against the wire contract and violations reported as ErrProtocol.
type Client struct {
	bases []string     // relay instances serving the same rooms (JetStream), in order of preference
	wire  []*wirePool  // per base: the client's own transport (wire.go); nil = net/http
	cur   atomic.Int32 // index of the instance in use: moves on when one fails
	hc    *http.Client
	tr    *http.Transport // nil when the caller supplied a Transport
	cfg   ClientConfig

	nameMu   sync.Mutex
	name     string       // the relay's name, once known
	features int8         // FeatureClaimEnvelope: 0 not known yet, 1 offered, -1 not (guarded by nameMu)
	lastMs   atomic.Int64 // last claim time used: claims from this client strictly increase
}

// Message is one envelope as delivered by the relay.
type Message struct {
	Seq  uint64 `json:"seq"`
	From string `json:"from"`
	To   string `json:"to"` // empty for a broadcast
	Body []byte `json:"body"`
}

// RoomInfo describes a freshly created room.
type RoomInfo struct {
	ID        string
	Size      int
	ExpiresAt time.Time
}

// NewClient returns a client for the relay at baseURL ("http(s)://host:port",
// optionally with a path prefix). A bare "host:port" means http, or https
// when cfg.TLS is set. Several comma-separated URLs name instances serving
// the same rooms (relays over NATS JetStream): the client fails over to the
// next one when the one in use is unreachable or unavailable.
func NewClient(baseURL string, cfg ClientConfig) (*Client, error) {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.PollChunk <= 0 {
		cfg.PollChunk = DefaultPollChunk
	}
	if cfg.PollChunk > maxWaitMsCap*time.Millisecond {
		return nil, fmt.Errorf("relay: PollChunk %v exceeds the wire limit of %d ms", cfg.PollChunk, maxWaitMsCap)
	}
	if cfg.MaxIdleConnsPerHost <= 0 {
		cfg.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxResponseBytes < 64<<10 {
		return nil, fmt.Errorf("relay: MaxResponseBytes %d is below 64 KiB", cfg.MaxResponseBytes)
	}
	c := &Client{cfg: cfg, name: cfg.RelayName}
	for _, b := range strings.Split(baseURL, ",") {
		nb, err := normaliseBase(strings.TrimSpace(b), cfg.TLS != nil)
		if err != nil {
			return nil, err
		}
		c.bases = append(c.bases, nb)
		var wp *wirePool
		if cfg.Transport == nil {
			if wp, err = newWirePool(nb, &cfg); err != nil {
				return nil, err
			}
		}
		c.wire = append(c.wire, wp)
	}
	rt := cfg.Transport
	if rt == nil {
		c.tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       cfg.TLS,
			TLSHandshakeTimeout:   10 * time.Second,
			MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
			MaxConnsPerHost:       cfg.MaxConnsPerHost,
			IdleConnTimeout:       60 * time.Second, // below the relay's 120 s so the client closes first
			DisableCompression:    true,
			ForceAttemptHTTP2:     false,           // the relay speaks HTTP/1.1
			ExpectContinueTimeout: 2 * time.Second, // only for bodies over expectThreshold
		}
		rt = c.tr
	}
	c.hc = &http.Client{
		Transport: rt,
		// Redirects would let the relay bounce envelopes elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

func normaliseBase(baseURL string, useTLS bool) (string, error) {
	if !strings.Contains(baseURL, "://") {
		if useTLS {
			baseURL = "https://" + baseURL
		} else {
			baseURL = "http://" + baseURL
		}
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", fmt.Errorf("relay: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("relay: base URL %q must be http(s)://host:port[/prefix]", baseURL)
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// BaseURL returns the normalised URL of the relay instance in use.
func (c *Client) BaseURL() string { return c.bases[int(c.cur.Load())%len(c.bases)] }

// Close releases idle pooled connections.
func (c *Client) Close() {
	if c.tr != nil {
		c.tr.CloseIdleConnections()
	}
	for _, wp := range c.wire {
		if wp != nil {
			wp.closeIdle()
		}
	}
}

// CreateRoom opens a room for size parties with the relay's default TTL.
func (c *Client) CreateRoom(ctx context.Context, size int) (string, error) {
	info, err := c.CreateRoomTTL(ctx, size, 0)
	return info.ID, err
}

// CreateRoomTTL opens a room for size parties living ttl (whole seconds;
// 0 = the relay's default).
func (c *Client) CreateRoomTTL(ctx context.Context, size int, ttl time.Duration) (RoomInfo, error) {
	if size < 1 {
		return RoomInfo{}, fmt.Errorf("relay: create room: size %d: %w", size, ErrBadRequest)
	}
	if ttl < 0 || (ttl > 0 && ttl < time.Second) {
		return RoomInfo{}, fmt.Errorf("relay: create room: ttl %v must be 0 or at least 1s: %w", ttl, ErrBadRequest)
	}
	body := []byte(`{"size":` + strconv.Itoa(size))
	if ttl > 0 {
		body = append(body, `,"ttl_seconds":`+strconv.FormatInt(int64(ttl/time.Second), 10)...)
	}
	body = append(body, '}')
	data, err := c.do(ctx, http.MethodPost, "/v1/rooms", "", "application/json", body, c.cfg.RequestTimeout)
	if err != nil {
		return RoomInfo{}, fmt.Errorf("relay: create room: %w", err)
	}
	var resp struct {
		RoomUUID  string    `json:"room_uuid"`
		Size      int       `json:"size"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return RoomInfo{}, fmt.Errorf("relay: create room: %w: %v", ErrProtocol, err)
	}
	if !ValidRoomID(resp.RoomUUID) || resp.Size != size {
		return RoomInfo{}, fmt.Errorf("relay: create room: %w: bad room id or size in answer", ErrProtocol)
	}
	return RoomInfo{ID: resp.RoomUUID, Size: resp.Size, ExpiresAt: resp.ExpiresAt}, nil
}

// RoomInfo returns an open room's size and expiry.
func (c *Client) RoomInfo(ctx context.Context, room string) (RoomInfo, error) {
	if !ValidRoomID(room) {
		return RoomInfo{}, fmt.Errorf("relay: room info: %w: bad room id", ErrBadRequest)
	}
	data, err := c.do(ctx, http.MethodGet, "/v1/rooms/"+room, "", "", nil, c.cfg.RequestTimeout)
	if err != nil {
		return RoomInfo{}, fmt.Errorf("relay: room info: %w", err)
	}
	var resp struct {
		RoomUUID  string    `json:"room_uuid"`
		Size      int       `json:"size"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(data, &resp); err != nil || resp.RoomUUID != room || resp.Size < 1 {
		return RoomInfo{}, fmt.Errorf("relay: room info: %w: bad answer", ErrProtocol)
	}
	return RoomInfo{ID: resp.RoomUUID, Size: resp.Size, ExpiresAt: resp.ExpiresAt}, nil
}

// Name returns the relay's name, the one seat claims are signed for:
// ClientConfig.RelayName, or what the relay answers at GET /v1/info.
func (c *Client) Name(ctx context.Context) (string, error) {
	c.nameMu.Lock()
	defer c.nameMu.Unlock()
	if c.name != "" {
		return c.name, nil
	}
	if err := c.infoLocked(ctx); err != nil {
		return "", err
	}
	return c.name, nil
}

// ClaimsEnvelopes reports whether the relay takes a party's first envelope
// with its seat claim (FeatureClaimEnvelope in GET /v1/info, asked once).
// A relay that cannot be asked counts as one that does not.
func (c *Client) ClaimsEnvelopes(ctx context.Context) bool {
	c.nameMu.Lock()
	defer c.nameMu.Unlock()
	if c.features == 0 {
		_ = c.infoLocked(ctx)
	}
	return c.features > 0
}

// forgetFeatures makes the next ClaimsEnvelopes ask the relay again (an
// instance refused a claim with an envelope: it may be an older one).
func (c *Client) forgetFeatures() {
	c.nameMu.Lock()
	c.features = 0
	c.nameMu.Unlock()
}

// infoLocked asks GET /v1/info for the relay's name (unless configured)
// and features.
func (c *Client) infoLocked(ctx context.Context) error {
	data, err := c.do(ctx, http.MethodGet, "/v1/info", "", "", nil, c.cfg.RequestTimeout)
	if err != nil {
		return fmt.Errorf("relay: info: %w", err)
	}
	var resp struct {
		Name     string   `json:"name"`
		Features []string `json:"features"` // absent from relays before it
	}
	if err := json.Unmarshal(data, &resp); err != nil || resp.Name == "" || len(resp.Name) > 255 {
		return fmt.Errorf("relay: info: %w: bad relay name in answer", ErrProtocol)
	}
	if c.name == "" {
		c.name = resp.Name
	}
	c.features = -1
	if slices.Contains(resp.Features, FeatureClaimEnvelope) {
		c.features = 1
	}
	return nil
}

// claimTime returns now in Unix milliseconds, strictly above every claim
// time this client used before, so that quick re-claims are never stale.
func (c *Client) claimTime() int64 {
	now := time.Now().UnixMilli()
	for {
		last := c.lastMs.Load()
		t := max(now, last+1)
		if c.lastMs.CompareAndSwap(last, t) {
			return t
		}
	}
}

// TakeSeat claims signer's seat in room among members (the ceremony's
// keygen_ids, signer's included; any order), signing a fresh claim for
// this relay. Claiming again gives a new token and voids the old one.
func (c *Client) TakeSeat(ctx context.Context, room string, signer Signer, members []envelope.Party) (*Seat, error) {
	st, _, err := c.takeSeat(ctx, room, signer, members, nil, nil)
	return st, err
}

// Post is an envelope to post: To is the recipient's name (hex; empty =
// broadcast).
type Post struct {
	To   string
	Body []byte
}

// claimed is what a claim's request did besides taking the seat: the
// envelope it posted (posted) and the envelopes its fetch brought
// (fetched: the relay fetched; left: it also ended the seat's reading).
type claimed struct {
	posted, fetched, left bool
	msgs                  []Message
}

// takeSeat is TakeSeat whose request also posts first (if not nil; the
// caller checked ClaimsEnvelopes) and runs fetch (if not nil).
func (c *Client) takeSeat(ctx context.Context, room string, signer Signer, members []envelope.Party, first *Post, fetch *fetchQuery) (*Seat, claimed, error) {
	if !ValidRoomID(room) {
		return nil, claimed{}, fmt.Errorf("relay: take seat: room id is not a lowercase UUID v4: %w", ErrBadRequest)
	}
	name, err := c.Name(ctx)
	if err != nil {
		return nil, claimed{}, err
	}
	// One post id for every attempt: an instance that stored the envelope
	// before dying makes the next one's copy a duplicate (JetStream).
	postID := ""
	if first != nil && len(c.bases) > 1 {
		if postID, err = newPostID(); err != nil {
			return nil, claimed{}, err
		}
	}
	// Each attempt signs afresh: a claim the failed instance may have
	// accepted before dying would be refused as stale elsewhere. A claim
	// refused as stale at the same instance is re-signed too: someone who
	// saw it in flight may have presented it first (the relay cannot tell
	// the copies apart), and a newer claim of ours takes the seat back and
	// voids the token that copy was given.
	for attempt, stale := 0, 0; ; {
		var aux [32]byte
		if _, err := rand.Read(aux[:]); err != nil {
			return nil, claimed{}, fmt.Errorf("relay: take seat: randomness: %w", err)
		}
		sc, err := NewSeatClaim(signer, name, room, members, c.claimTime(), aux)
		if err != nil {
			return nil, claimed{}, err
		}
		st, cl, err := c.claim(ctx, room, sc, first, fetch, postID)
		if err != nil && ctx.Err() == nil && stale < maxStaleReclaims && isCode(err, CodeStaleSeatClaim) {
			stale++
			continue
		}
		if err == nil || attempt >= len(c.bases)-1 || ctx.Err() != nil || !failoverWorthy(err) {
			return st, cl, err
		}
		attempt++
		start := c.cur.Load()
		c.cur.CompareAndSwap(start, (start+1)%int32(len(c.bases)))
	}
}

// maxStaleReclaims bounds how often TakeSeat re-signs a claim the relay
// refused as stale (replayed ahead of it, or outside the clock window).
const maxStaleReclaims = 3

// isCode reports whether err carries the relay error code.
func isCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Claim presents a signed seat claim (see TakeSeat) and returns the seat.
func (c *Client) Claim(ctx context.Context, room string, sc SeatClaim) (*Seat, error) {
	st, _, err := c.claim(ctx, room, sc, nil, nil, "")
	return st, err
}

// claim presents sc, with first as its envelope and fetch's parameters
// when not nil.
func (c *Client) claim(ctx context.Context, room string, sc SeatClaim, first *Post, fetch *fetchQuery, postID string) (*Seat, claimed, error) {
	if !ValidRoomID(room) || !ValidParty(sc.Party) || (first != nil && first.To != "" && !ValidParty(first.To)) {
		return nil, claimed{}, fmt.Errorf("relay: claim seat: bad room id, party or recipient: %w", ErrBadRequest)
	}
	path := "/v1/rooms/" + room + "/seats"
	sep := "?"
	sc.Envelope = nil // only first rides on the claim (its recipient is in the query)
	if first != nil {
		sc.Envelope = first.Body
		path += "?to=" + first.To
		sep = "&"
	}
	if fetch != nil {
		path += sep + fetch.query(c)
	}
	body, err := json.Marshal(sc)
	if err != nil {
		return nil, claimed{}, fmt.Errorf("relay: claim seat: %w", err)
	}
	timeout := c.cfg.RequestTimeout
	if fetch != nil {
		timeout += fetch.wait
	}
	data, err := c.doID(ctx, http.MethodPost, path, "", "application/json", postID, body, timeout)
	if err != nil {
		return nil, claimed{}, fmt.Errorf("relay: claim seat in room %s: %w", room, err)
	}
	var resp struct {
		Token    string     `json:"token"`
		Set      string     `json:"set"`
		Seats    int        `json:"seats"`
		Size     int        `json:"size"` // absent from relays before it
		Seq      *uint64    `json:"seq"`
		Messages *[]Message `json:"messages"`
		Left     bool       `json:"left"`
	}
	if err := json.Unmarshal(data, &resp); err != nil || len(resp.Token) != 2*seatTokenBytes || !isLowerHex(resp.Token) ||
		len(resp.Set) != 64 || !isLowerHex(resp.Set) || resp.Seats < 1 || resp.Size < 0 || (resp.Size > 0 && resp.Size < resp.Seats) ||
		(first != nil && (resp.Seq == nil || *resp.Seq == 0)) {
		return nil, claimed{}, fmt.Errorf("relay: claim seat in room %s: %w: bad answer", room, ErrProtocol)
	}
	st := &Seat{Room: room, Party: sc.Party, Set: resp.Set, Seats: resp.Seats, Size: resp.Size, c: c, token: resp.Token}
	cl := claimed{posted: first != nil}
	if fetch != nil && resp.Messages != nil {
		if cl.msgs, err = checkFetch(*resp.Messages, sc.Party, fetch.after); err == nil {
			err = fetch.checkLeft(resp.Left, len(cl.msgs))
		}
		if err != nil {
			return nil, claimed{}, fmt.Errorf("relay: claim seat in room %s: %w", room, err)
		}
		cl.fetched, cl.left = true, resp.Left
		if resp.Left {
			st.left.Store(true)
		}
	}
	return st, cl, nil
}

// fetchQuery is a fetch's parameters, for a fetch of its own or one that
// rides on a post or a claim.
type fetchQuery struct {
	after      uint64
	wait       time.Duration
	leaveAfter int
}

func (f *fetchQuery) query(c *Client) string {
	q := "after=" + strconv.FormatUint(f.after, 10) +
		"&wait_ms=" + strconv.FormatInt(int64(max(f.wait, 0)/time.Millisecond), 10) +
		"&max_bytes=" + strconv.FormatInt(c.cfg.MaxResponseBytes, 10)
	if f.leaveAfter > 0 {
		q += "&leave_after=" + strconv.Itoa(f.leaveAfter)
	}
	return q
}

// checkLeft refuses an answer that left the seat without being asked to.
func (f *fetchQuery) checkLeft(left bool, n int) error {
	if left && (f.leaveAfter == 0 || n < f.leaveAfter) {
		return fmt.Errorf("%w: left the seat unasked", ErrProtocol)
	}
	return nil
}

// Seat is a party's place in a room, as answered to its claim. Every
// post, fetch and leave goes through it, so the relay knows who acts.
type Seat struct {
	Room  string // room id
	Party string // this party's keygen_id, hex
	Set   string // the member set id, hex
	Seats int    // seats the set holds: min(room size, members)
	Size  int    // the room's size; 0 when the relay did not say (RoomInfo asks)

	c     *Client
	token string
	left  atomic.Bool // left, or its reading ended by the relay (Conn.LeaveAfter, a post that left): nothing to leave
}

// Token returns the seat's bearer token (sent as "Authorization: Seat
// <token>"); whoever holds it acts as this seat, so keep it out of logs.
func (st *Seat) Token() string { return st.token }

// Post appends an envelope from this seat, addressed to `to` (empty =
// broadcast to every other seat of the set); it returns the envelope's seq.
func (st *Seat) Post(ctx context.Context, to string, body []byte) (uint64, error) {
	seq, _, err := st.postFetch(ctx, to, body, nil, false)
	return seq, err
}

// PostLeave is Post of the seat's last envelope, then Leave: one request
// where the relay leaves with a post (relays before it, and JetStream
// relays, post only; then Leave sends DELETE).
func (st *Seat) PostLeave(ctx context.Context, to string, body []byte) error {
	if _, _, err := st.postFetch(ctx, to, body, nil, true); err != nil {
		return err
	}
	return st.Leave(ctx)
}

// postFetch is Post whose request also runs fetch (if not nil) once the
// envelope is stored, or, with leave, leaves the seat; fetched and left
// say the relay did (relays before it only post).
func (st *Seat) postFetch(ctx context.Context, to string, body []byte, fetch *fetchQuery, leave bool) (uint64, claimed, error) {
	if to != "" && !ValidParty(to) {
		return 0, claimed{}, fmt.Errorf("relay: post: recipient is not a valid party name: %w", ErrBadRequest)
	}
	if len(body) == 0 {
		return 0, claimed{}, fmt.Errorf("relay: post: empty envelope: %w", ErrBadRequest)
	}
	path := "/v1/rooms/" + st.Room + "/messages?to=" + to
	timeout := st.c.cfg.RequestTimeout
	if fetch != nil {
		path += "&" + fetch.query(st.c)
		timeout += fetch.wait
	}
	if leave {
		path += "&leave=1"
	}
	data, err := st.c.do(ctx, http.MethodPost, path, st.token, "application/octet-stream", body, timeout)
	if err != nil {
		return 0, claimed{}, fmt.Errorf("relay: post to room %s: %w", st.Room, err)
	}
	var resp struct {
		Seq      *uint64    `json:"seq"`
		Messages *[]Message `json:"messages"`
		Left     bool       `json:"left"`
	}
	if err := json.Unmarshal(data, &resp); err != nil || resp.Seq == nil || *resp.Seq == 0 {
		return 0, claimed{}, fmt.Errorf("relay: post to room %s: %w: bad seq in answer", st.Room, ErrProtocol)
	}
	cl := claimed{posted: true}
	if resp.Left && !leave && fetch == nil {
		return 0, claimed{}, fmt.Errorf("relay: post to room %s: %w: left the seat unasked", st.Room, ErrProtocol)
	}
	if leave && resp.Left {
		cl.left = true
		st.left.Store(true)
	}
	if fetch != nil && resp.Messages != nil {
		if cl.msgs, err = checkFetch(*resp.Messages, st.Party, fetch.after); err == nil {
			err = fetch.checkLeft(resp.Left, len(cl.msgs))
		}
		if err != nil {
			return 0, claimed{}, fmt.Errorf("relay: post to room %s: %w", st.Room, err)
		}
		cl.fetched, cl.left = true, resp.Left
		if resp.Left {
			st.left.Store(true)
		}
	}
	return *resp.Seq, cl, nil
}

// Fetch returns the envelopes after seq `after` this seat may read
// (addressed to it, or broadcast by another seat of its set), waiting up to
// wait for the first one; an empty result means the wait expired. wait
// must not exceed the relay's MaxWait.
func (st *Seat) Fetch(ctx context.Context, after uint64, wait time.Duration) ([]Message, error) {
	return st.fetch(ctx, &fetchQuery{after: after, wait: wait})
}

// fetch is Fetch asking the relay to leave the seat with an answer of at
// least f.leaveAfter envelopes (0: never); a relay that did says so, and
// Leave then has nothing left to do.
func (st *Seat) fetch(ctx context.Context, f *fetchQuery) ([]Message, error) {
	f.wait = max(f.wait, 0)
	path := "/v1/rooms/" + st.Room + "/messages?" + f.query(st.c)
	data, err := st.c.do(ctx, http.MethodGet, path, st.token, "", nil, f.wait+st.c.cfg.RequestTimeout)
	if err != nil {
		return nil, fmt.Errorf("relay: fetch from room %s: %w", st.Room, err)
	}
	msgs, left, err := decodeFetch(data, st.Party, f.after)
	if err == nil {
		err = f.checkLeft(left, len(msgs))
	}
	if err != nil {
		return nil, fmt.Errorf("relay: fetch from room %s: %w", st.Room, err)
	}
	if left {
		st.left.Store(true)
	}
	return msgs, nil
}

// Leave gives up the seat; once every seat of the set has left, the room
// closes for good. Leaving twice is harmless.
func (st *Seat) Leave(ctx context.Context) error {
	if st.left.Load() {
		return nil
	}
	if _, err := st.c.do(ctx, http.MethodDelete, "/v1/rooms/"+st.Room, st.token, "", nil, st.c.cfg.RequestTimeout); err != nil {
		return fmt.Errorf("relay: leave room %s: %w", st.Room, err)
	}
	st.left.Store(true)
	return nil
}

// Health checks the relay's /healthz.
func (c *Client) Health(ctx context.Context) error {
	if _, err := c.do(ctx, http.MethodGet, "/healthz", "", "", nil, c.cfg.RequestTimeout); err != nil {
		return fmt.Errorf("relay: health: %w", err)
	}
	return nil
}

// do performs one request (as the seat holding token, if not empty) and
// returns the body of a 200 answer, a *Error for any other status, or a
// transport error. With several instances, a transport error or a 502/503/504
// moves to the next instance and retries there (idempotent requests; posts
// carry a post id the relay deduplicates on). Query strings are built from
// validated hex and digits only, so they need no escaping.
func (c *Client) do(ctx context.Context, method, pathQuery, token, contentType string, body []byte, timeout time.Duration) ([]byte, error) {
	var postID string
	if method == http.MethodPost && strings.HasSuffix(pathOnly(pathQuery), "/messages") && len(c.bases) > 1 {
		var err error
		if postID, err = newPostID(); err != nil {
			return nil, err
		}
	}
	return c.doID(ctx, method, pathQuery, token, contentType, postID, body, timeout)
}

// newPostID draws a post's id (X-Post-Id), which lets a JetStream relay
// store a retried post once.
func newPostID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("relay: post id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// doID is do with the post id given (empty: none).
func (c *Client) doID(ctx context.Context, method, pathQuery, token, contentType, postID string, body []byte, timeout time.Duration) ([]byte, error) {
	if c.cfg.OnRequest != nil {
		defer c.cfg.OnRequest(method, pathOnly(pathQuery), time.Now())
	}
	retry := len(c.bases) > 1 && !strings.HasSuffix(pathOnly(pathQuery), "/seats") // a claim is re-signed by TakeSeat
	var err error
	for attempt := range len(c.bases) {
		start := c.cur.Load()
		base := c.bases[int(start)%len(c.bases)]
		var data []byte
		if wp := c.wire[int(start)%len(c.bases)]; wp != nil && len(body) <= expectThreshold {
			data, err = c.doWire(ctx, wp, &wireRequest{method: method, pathQuery: pathQuery, token: token,
				contentType: contentType, postID: postID, body: body}, timeout)
		} else {
			data, err = c.doOnce(ctx, base, method, pathQuery, token, contentType, postID, body, timeout)
		}
		if err == nil || !retry || attempt == len(c.bases)-1 || ctx.Err() != nil || !failoverWorthy(err) {
			return data, err
		}
		c.cur.CompareAndSwap(start, (start+1)%int32(len(c.bases)))
	}
	return nil, err
}

// failoverWorthy reports whether err says the instance, not the request,
// is the problem.
func failoverWorthy(err error) bool {
	if errors.Is(err, ErrTransport) {
		return true
	}
	var re *Error
	if errors.As(err, &re) {
		switch re.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return re.Code != CodeTooManyRooms
		}
	}
	return false
}

func (c *Client) doOnce(ctx context.Context, base, method, pathQuery, token, contentType, postID string, body []byte, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+pathQuery, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if len(body) > expectThreshold {
		// Lets the relay refuse an oversized envelope before it is sent,
		// instead of resetting the connection mid-upload.
		req.Header.Set("Expect", "100-continue")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Seat "+token)
	}
	if postID != "" {
		req.Header.Set(postIDHeader, postID)
	}
	op := method + " " + pathOnly(pathQuery)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, &transportError{op: op, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, &transportError{op: op, err: err}
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return nil, fmt.Errorf("%w: answer exceeds %d bytes", ErrProtocol, c.cfg.MaxResponseBytes)
	}
	if resp.StatusCode == http.StatusOK {
		return data, nil
	}
	return nil, decodeError(resp.StatusCode, data)
}

// doWire is doOnce through the client's own transport (wire.go).
func (c *Client) doWire(ctx context.Context, wp *wirePool, r *wireRequest, timeout time.Duration) ([]byte, error) {
	status, data, err := wp.do(ctx, r, timeout, c.cfg.MaxResponseBytes)
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			return nil, err
		}
		return nil, &transportError{op: r.method + " " + pathOnly(r.pathQuery), err: err}
	}
	if status == http.StatusOK {
		return data, nil
	}
	return nil, decodeError(status, data)
}

func pathOnly(pq string) string {
	p, _, _ := strings.Cut(pq, "?")
	return p
}

// decodeError turns a non-200 answer into *Error. The text comes from an
// untrusted relay, so it is bounded and stripped of control characters.
func decodeError(status int, data []byte) *Error {
	var eb errorBody
	_ = json.Unmarshal(data, &eb) // a non-JSON body (proxy, fasthttp) still yields the status
	clean := func(s string, n int) string {
		s = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return -1
			}
			return r
		}, s)
		if len(s) > n {
			s = s[:n]
		}
		return s
	}
	return &Error{Status: status, Code: clean(eb.Error, 64), Message: clean(eb.Message, 256)}
}

// decodeFetch parses a fetch answer and checks it against the contract:
// strictly increasing seqs above after, each addressed to party or a
// broadcast from another valid party.
func decodeFetch(data []byte, party string, after uint64) (_ []Message, left bool, _ error) {
	var resp struct {
		Messages *[]Message `json:"messages"`
		Left     bool       `json:"left"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if resp.Messages == nil {
		return nil, false, fmt.Errorf("%w: answer has no messages list", ErrProtocol)
	}
	msgs, err := checkFetch(*resp.Messages, party, after)
	return msgs, resp.Left, err
}

// checkFetch checks fetched envelopes against the contract (see
// decodeFetch); none is returned as nil.
func checkFetch(msgs []Message, party string, after uint64) ([]Message, error) {
	last := after
	for i := range msgs {
		m := &msgs[i]
		if m.Seq <= last {
			return nil, fmt.Errorf("%w: seq %d not above %d", ErrProtocol, m.Seq, last)
		}
		last = m.Seq
		if !ValidParty(m.From) {
			return nil, fmt.Errorf("%w: seq %d has an invalid sender", ErrProtocol, m.Seq)
		}
		switch m.To {
		case party:
		case "":
			if m.From == party {
				return nil, fmt.Errorf("%w: seq %d echoes our own broadcast", ErrProtocol, m.Seq)
			}
		default:
			return nil, fmt.Errorf("%w: seq %d is addressed to another party", ErrProtocol, m.Seq)
		}
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	return msgs, nil
}

// isCtxDone reports whether err stems from ctx ending.
func isCtxDone(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTransport))
}
