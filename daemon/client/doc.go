// Package client is the Go client of quorumd's REST API (DESIGN §2): one
// typed method per endpoint, the {"err_type","err_msg"} envelope as an
// *APIError, contexts, TLS and client certificates, replica failover,
// retries where an operation is idempotent, and the multi-daemon drivers
// (Quorum: import, keygen, sign, batch sign, refresh, reshare) that
// quorumctl runs.
//
// It is hand-written rather than generated from docs/openapi.yaml: the
// spec is what gets checked instead — the e2e tests validate the daemon's
// real answers against it (kin-openapi, issue 18), and this package's
// TestEndpoints calls every operation it documents through the client
// against real daemons — so drift shows up in tests; a generator
// (oapi-codegen, ogen) would add a build-time dependency and a second
// vocabulary of types beside the ones here, and it cannot express what a
// client of this API must do by hand anyway — hex-encode a private key in
// constant time into a body that is wiped after sending, encrypt it to the
// daemon's HPKE import key, check answers (UUIDs, keygen_ids, pubkeys) and
// decide which calls may be repeated.
//
// Secrets: an API key is only ever sent as the Authorization header; a
// private key or plaintext backup is taken as []byte, hex-encoded without
// data-dependent branches into a request body that is zeroed once the call
// returns, and never appears in an error.
package client
