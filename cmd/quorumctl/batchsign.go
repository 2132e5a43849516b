package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// errBatchItems: at least one item of a batch was not signed.
var errBatchItems = errors.New("batch items not signed")

// BatchItemResult is one entry of /bip340/batch-sign's answer: a signature
// or an error envelope.
type BatchItemResult struct {
	Signature string `json:"signature,omitempty"`
	ErrType   string `json:"err_type,omitempty"`
	ErrMsg    string `json:"err_msg,omitempty"`
}

// BatchSign runs one party's side of a batch signing ceremony and returns
// one result per request, in order.
func (c *Client) BatchSign(ctx context.Context, reqs []SignRequest) ([]BatchItemResult, error) {
	body, err := json.Marshal(map[string]any{"sign_requests": reqs})
	if err != nil {
		return nil, err
	}
	var out []BatchItemResult
	if err := c.do(ctx, http.MethodPost, "/bip340/batch-sign", nil, body, &out); err != nil {
		return nil, err
	}
	if len(out) != len(reqs) {
		return nil, c.badResponse("/bip340/batch-sign", "%d results for %d sign requests", len(out), len(reqs))
	}
	return out, nil
}

// batchItemOut is one item of a batch's report.
type batchItemOut struct {
	Message   string            `json:"message"`
	Signature string            `json:"signature,omitempty"`
	Errors    map[string]string `json:"errors,omitempty"` // daemon index → err_type: err_msg
}

// batchResult is what a verified batch reports.
type batchResult struct {
	Signers  []int          `json:"signers"`
	Daemons  []string       `json:"daemons"`
	KeyIDs   []string       `json:"key_ids"`
	RoomUUID string         `json:"room_uuid"`
	Pubkey   string         `json:"pubkey"`
	Items    []batchItemOut `json:"items"`
	Signed   int            `json:"signed"`
	Timing   signTimings    `json:"timing_ms"`
}

// runBatchSign makes one room of size u, calls /bip340/batch-sign with the
// same messages on the u signers at once, and checks every item: the same
// signature from every signer, verifying under key, or an error envelope.
func runBatchSign(ctx context.Context, p *signPlan, msgs [][]byte, key *signKey, out *printer) (*batchResult, error) {
	u := len(p.Signers)
	res := &batchResult{Signers: p.Index, KeyIDs: p.KeyIDs, Pubkey: hex.EncodeToString(key.Pubkey)}
	for _, c := range p.Signers {
		res.Daemons = append(res.Daemons, c.Base)
	}
	room, roomTime, err := signRoom(ctx, p, out)
	if err != nil {
		return nil, err
	}
	res.RoomUUID = room
	t0 := time.Now()
	answers := make([][]BatchItemResult, u)
	errs := parallel(ctx, u, func(ctx context.Context, i int) error {
		reqs := make([]SignRequest, len(msgs))
		for k, m := range msgs {
			reqs[k] = SignRequest{RoomUUID: room, KeyID: p.KeyIDs[i], Msg: hex.EncodeToString(m),
				DerivationPath: p.DerivationPath, Tweak: p.Tweak, RelayAddress: p.RelayAddress}
		}
		a, err := p.Signers[i].BatchSign(ctx, reqs)
		if err != nil {
			out.step("daemon %d: batch-sign failed: %v", p.Index[i], err)
			return err
		}
		answers[i] = a
		out.step("daemon %d: answered %d items", p.Index[i], len(a))
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("batch signing ceremony, daemon %d: %w", p.Index[i], err)
	}
	res.Timing = signTimings{Room: msf(roomTime), Ceremony: msf(time.Since(t0))}
	for k, m := range msgs {
		item := batchItemOut{Message: hex.EncodeToString(m)}
		for i, a := range answers {
			r := a[k]
			if r.ErrType != "" {
				if item.Errors == nil {
					item.Errors = map[string]string{}
				}
				item.Errors[fmt.Sprint(p.Index[i])] = r.ErrType + ": " + r.ErrMsg
				continue
			}
			if item.Signature != "" && r.Signature != item.Signature {
				return nil, fmt.Errorf("item %d: daemons returned different signatures: %w", k, errMismatch)
			}
			item.Signature = r.Signature
		}
		if item.Signature != "" {
			if item.Errors != nil {
				return nil, fmt.Errorf("item %d: signed by some daemons, failed at others: %w", k, errMismatch)
			}
			sig, err := decodeHexLen(item.Signature, 64)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w: %v", k, errBadResponse, err)
			}
			if err := verifySignature(key.Pubkey, m, sig); err != nil {
				return nil, fmt.Errorf("item %d: %w", k, err)
			}
			res.Signed++
		}
		res.Items = append(res.Items, item)
	}
	out.step("%d of %d items signed by all %d signers and verified under pubkey %x", res.Signed, len(msgs), u, key.Pubkey)
	return res, nil
}

func runBatchSignCmd(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl batch-sign", flag.ContinueOnError)
	var h httpFlags
	var q quorumFlags
	h.register(fs, 2*time.Minute)
	q.register(fs)
	keyIDs := fs.String("key-ids", "", "comma-separated key ids, one per daemon (as printed by import)")
	msgList := fs.String("msgs", "", "comma-separated messages to sign, hex; one ceremony signs them all")
	signers := fs.String("signers", "", "comma-separated indexes in -daemons of the signers (default: all)")
	path := fs.String("derivation-path", "", "BIP32 unhardened derivation path for every message, e.g. m/0/1")
	tweak := fs.String("tweak", "", "x-only tweak for every message, 64 hex")
	relayAddr := fs.String("relay-address", "", "relay host:port for the ceremony (must be on the users' policy allowlist)")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	parties, err := q.parties(&h, len(splitList(q.daemons)))
	if err != nil {
		return err
	}
	ids := splitList(*keyIDs)
	if len(ids) != len(parties) {
		return usagef("%d key ids for %d daemons", len(ids), len(parties))
	}
	var msgs [][]byte
	for _, s := range splitList(*msgList) {
		m, err := hex.DecodeString(s)
		if err != nil || s == "" {
			return usagef("-msgs: %q is not non-empty hex", s)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return usagef("-msgs must list at least one message")
	}
	idx := make([]int, len(parties))
	for i := range idx {
		idx[i] = i
	}
	if *signers != "" {
		if idx, err = parseIndexes(*signers, len(parties)); err != nil {
			return err
		}
	}
	plan := &signPlan{Index: idx, DerivationPath: *path, Tweak: *tweak, RelayAddress: *relayAddr}
	for _, i := range idx {
		plan.Signers = append(plan.Signers, parties[i])
		plan.KeyIDs = append(plan.KeyIDs, ids[i])
	}
	if *relayAddr != "" {
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
	key, err := checkSignKey(ctx, plan, out)
	if err != nil {
		return err
	}
	res, err := runBatchSign(ctx, plan, msgs, key, out)
	if err != nil {
		return err
	}
	if perr := out.result(res, func(w io.Writer) {
		for k, it := range res.Items {
			if it.Signature != "" {
				fmt.Fprintf(w, "item %d: message %s signature %s\n", k, it.Message, it.Signature)
				continue
			}
			var es []string
			for d, e := range it.Errors {
				es = append(es, "daemon "+d+": "+e)
			}
			slices.Sort(es)
			fmt.Fprintf(w, "item %d: message %s NOT SIGNED (%s)\n", k, it.Message, strings.Join(es, "; "))
		}
	}); perr != nil {
		return perr
	}
	if res.Signed < len(msgs) {
		return fmt.Errorf("%d of %d items: %w", len(msgs)-res.Signed, len(msgs), errBatchItems)
	}
	return nil
}
