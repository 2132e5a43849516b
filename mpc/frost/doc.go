// Package frost implements the BIP445 FROST3 threshold signing protocol for
// BIP340 Schnorr signatures (spec v0.8.0, ../shared/spec/bip-0445.md):
// NonceGen, NonceAgg, Sign, PartialSigVerify, PartialSigAgg,
// DeterministicSign, plain and x-only tweaking, and ValidateSignersCtx.
//
// Identifiers are 0-based BIP445 ids: participant id holds the Shamir share
// f(id+1). Errors mirror the spec's two kinds: *InputError (the reference's
// ValueError, matched with errors.Is(err, ErrInvalidInput)) and
// *InvalidContributionError (names the misbehaving signer by its index in the
// input list, or -1 for the coordinator).
//
// Secret handling: every value derived from a secret share or a secret nonce
// is a btcec.ModNScalar combined only with dcrd's constant-time scalar
// arithmetic, and every secret·G goes through secp.ScalarBaseMult. No
// ...NonConst function ever receives secret data; those are used only for
// public values (verification, aggregation, interpolation, tweaks). Branches
// in the signing path depend on public data only (parity of the public R and
// Q, public error conditions).
//
// A SecNonce is single-use: Sign consumes it whatever the outcome, zeroes it,
// and any later use fails with ErrNonceReused.
//
// Deviation from the spec text, on purpose: the nonce coefficient b hashes
// bytes(4, 4u) || ser_ids (the length of ser_ids) where the v0.8.0 text says
// bytes(4, u). The v0.8.0 test vectors, produced by the reference
// implementation, require the former; interoperability follows the vectors.
// DeterministicSign also validates the signers context before deriving its
// nonce, as the reference does (the spec text leaves it to Sign); this only
// changes which error is reported when several inputs are wrong.
//
// Performance: validated signers contexts and session values (pure
// functions of public inputs) are kept in small bounded caches, so the
// repeated GetSessionValues of one session (Sign, each PartialSigVerify,
// PartialSigAgg) are computed once.
package frost
