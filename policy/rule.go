package policy

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/url"
	"slices"
	"time"
)

// Rule is one named constraint set of Vertex's policy model (DESIGN §6),
// stored at rules/<rule_id>. A policy is a set of rules; every field a rule
// sets takes part in the policy's decision (see combine), fields left unset
// say nothing. External makes the rule an external rule: a rule server
// that must approve every signature (package policy/rules).
type Rule struct {
	ID                    string        `json:"-"`
	Name                  string        `json:"name"`
	AllowedOperations     []Operation   `json:"allowed_operations,omitempty"`
	MaxN                  *int          `json:"max_n,omitempty"`
	MinThreshold          *int          `json:"min_threshold,omitempty"`
	MaxThreshold          *int          `json:"max_threshold,omitempty"`
	AllowedRelayAddresses []string      `json:"allowed_relay_addresses,omitempty"`
	KeyQuota              *int          `json:"key_quota,omitempty"`
	RoomQuota             *int          `json:"room_quota,omitempty"`
	MaxMsgBytes           *int          `json:"max_msg_bytes,omitempty"`
	MsgPrefixes           []string      `json:"msg_prefixes,omitempty"`
	AllowBackupExport     *BackupExport `json:"allow_backup_export,omitempty"`
	External              *ExternalRule `json:"external,omitempty"`
	CreatedAt             time.Time     `json:"created_at"`
}

// BackupExport allows /bip340/backup/export-key-share: Mode "encrypted"
// (to RecipientPubkey, a hex public key the backup is sealed to) or
// "plaintext".
type BackupExport struct {
	Mode            string `json:"mode"`
	RecipientPubkey string `json:"recipient_pubkey,omitempty"`
}

// ExternalRule names a rule server (Vertex's add-external-rule): URL gets
// each sign request, and its answer must be a JWT signed with Pubkey under
// JWTAlg ("ES256" with a PEM P-256 key, "EdDSA" with a PEM or hex Ed25519
// key).
type ExternalRule struct {
	JWTAlg string `json:"jwt_alg"`
	URL    string `json:"url"`
	Pubkey string `json:"pubkey"`
}

// Validate checks a rule's fields; errors are bad_request_params text.
func (r *Rule) Validate() error {
	if !ValidUserName(r.Name) {
		return fmt.Errorf("rule name must be 1-%d bytes of printable UTF-8", MaxUserName)
	}
	for _, op := range r.AllowedOperations {
		o, ok := opRules[op]
		if !ok {
			return fmt.Errorf("unknown operation %q", op)
		}
		if o.admin {
			return fmt.Errorf("%q is granted by the admin flag, not by a rule", op)
		}
	}
	for _, v := range []*int{r.MaxN, r.MinThreshold, r.MaxThreshold, r.KeyQuota, r.RoomQuota, r.MaxMsgBytes} {
		if v != nil && *v < 0 {
			return fmt.Errorf("negative limit")
		}
	}
	if r.MinThreshold != nil && r.MaxThreshold != nil && *r.MinThreshold > *r.MaxThreshold {
		return fmt.Errorf("min_threshold %d > max_threshold %d", *r.MinThreshold, *r.MaxThreshold)
	}
	for _, a := range r.AllowedRelayAddresses {
		if err := validRelayAddress(a); err != nil {
			return err
		}
	}
	for _, p := range r.MsgPrefixes {
		if _, err := hex.DecodeString(p); err != nil || p == "" {
			return fmt.Errorf("msg_prefixes: %q is not non-empty hex", p)
		}
	}
	if b := r.AllowBackupExport; b != nil {
		switch b.Mode {
		case "plaintext":
		case "encrypted":
			if k, err := hex.DecodeString(b.RecipientPubkey); err != nil || len(k) < 32 || len(k) > 133 {
				return fmt.Errorf("allow_backup_export: encrypted mode needs recipient_pubkey (hex)")
			}
		default:
			return fmt.Errorf("allow_backup_export.mode %q: want encrypted or plaintext", b.Mode)
		}
	}
	if e := r.External; e != nil {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the rule server's URL, algorithm and public key.
func (e *ExternalRule) Validate() error {
	u, err := url.Parse(e.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return fmt.Errorf("url must be an http(s) URL without credentials")
	}
	if _, err := e.PublicKey(); err != nil {
		return err
	}
	return nil
}

// PublicKey parses Pubkey for JWTAlg: *ecdsa.PublicKey (P-256) for ES256,
// ed25519.PublicKey for EdDSA.
func (e *ExternalRule) PublicKey() (any, error) {
	switch e.JWTAlg {
	case "ES256":
		k, err := parsePKIX(e.Pubkey)
		if err != nil {
			return nil, err
		}
		ec, ok := k.(*ecdsa.PublicKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("pubkey: ES256 needs a P-256 public key")
		}
		return ec, nil
	case "EdDSA":
		if b, err := hex.DecodeString(e.Pubkey); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), nil
		}
		k, err := parsePKIX(e.Pubkey)
		if err != nil {
			return nil, err
		}
		ed, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("pubkey: EdDSA needs an Ed25519 public key")
		}
		return ed, nil
	default:
		return nil, fmt.Errorf("jwt_alg %q: want ES256 or EdDSA", e.JWTAlg)
	}
}

func parsePKIX(s string) (any, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("pubkey must be a PEM \"PUBLIC KEY\" block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pubkey: %v", err)
	}
	return k, nil
}

// combine folds a policy's rules into the flat limits Authorize checks.
// Grants add up (operations, relay addresses); limits take the strictest
// value any rule sets, and a limit no rule sets keeps its zero value (which
// denies, as for a flat policy), except room_quota and max_msg_bytes (0:
// unbounded). Message prefixes: each rule that lists prefixes must be
// matched by one of its own. Every external rule must approve.
func combine(p *Policy, rules []Rule) {
	min := func(dst *int, set *bool, v *int) {
		if v != nil && (!*set || *v < *dst) {
			*dst, *set = *v, true
		}
	}
	var setN, setMaxT, setQ, setRQ, setMB bool
	for i := range rules {
		r := &rules[i]
		for _, op := range r.AllowedOperations {
			if !slices.Contains(p.AllowedOperations, op) {
				p.AllowedOperations = append(p.AllowedOperations, op)
			}
		}
		for _, a := range r.AllowedRelayAddresses {
			if !slices.Contains(p.AllowedRelayAddresses, a) {
				p.AllowedRelayAddresses = append(p.AllowedRelayAddresses, a)
			}
		}
		min(&p.MaxN, &setN, r.MaxN)
		min(&p.MaxThreshold, &setMaxT, r.MaxThreshold)
		min(&p.KeyQuota, &setQ, r.KeyQuota)
		min(&p.RoomQuota, &setRQ, r.RoomQuota)
		min(&p.MaxMsgBytes, &setMB, r.MaxMsgBytes)
		if r.MinThreshold != nil && *r.MinThreshold > p.MinThreshold {
			p.MinThreshold = *r.MinThreshold
		}
		if len(r.MsgPrefixes) > 0 {
			set := make([][]byte, 0, len(r.MsgPrefixes))
			for _, h := range r.MsgPrefixes {
				b, _ := hex.DecodeString(h) // validated
				set = append(set, b)
			}
			p.MsgPrefixes = append(p.MsgPrefixes, set)
		}
		if r.AllowBackupExport != nil && p.BackupExport == nil {
			b := *r.AllowBackupExport
			p.BackupExport = &b
		}
		if r.External != nil {
			p.External = append(p.External, NamedExternalRule{RuleID: r.ID, Name: r.Name, ExternalRule: *r.External})
		}
	}
}

// NamedExternalRule is an external rule of a user's policy, with its id.
type NamedExternalRule struct {
	RuleID string
	Name   string
	ExternalRule
}
