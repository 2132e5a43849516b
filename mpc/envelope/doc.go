// Package envelope holds the signed, optionally encrypted message format that
// ceremony parties exchange through the untrusted relay (docs/protocol.md).
//
// Every envelope is signed (BIP340) by its sender's identity key over all of
// its other fields, so the relay can delay or drop envelopes but cannot forge,
// alter or redirect them. Point-to-point payloads are additionally encrypted:
// ECDH between the two identity keys, HKDF-SHA256 salted with the session id,
// AES-256-GCM with the header as associated data. Replay, reordering and
// cross-room reuse are detected by the Inbox: the session id binds the room,
// and every sender numbers its envelopes 1, 2, 3, … within a session.
package envelope
