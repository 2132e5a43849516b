// Package chilldkg implements ChillDKG (BIP draft "ChillDKG: Distributed Key
// Generation for FROST", v0.3.0, ../shared/spec/chilldkg.md): n participants
// and an untrusted coordinator generate a t-of-n BIP445 FROST key without a
// trusted dealer. Messages, recovery data and errors are byte-for-byte and
// case-for-case those of the spec's reference; the test vectors in
// ../shared/vectors/chilldkg fix them.
//
// # Layers
//
// SimplPedPop (Feldman VSS per participant, proofs of possession, a summed
// commitment, a Taproot-safe tweak), EncPedPop (shares encrypted to each
// recipient with a pad from ECDH of a session nonce and the recipient's host
// key, so the coordinator can sum ciphertexts) and CertEq (every participant
// signs the transcript; the n signatures are the success certificate). Only
// the ChillDKG functions are exported, as the spec recommends.
//
// # Driving a session
//
// Participant: ParticipantStep1 → (coordinator) → ParticipantStep2 →
// (coordinator) → ParticipantFinalize; on *UnknownFaultyParticipantOrCoordinatorError
// from step 2, ParticipantInvestigate with the coordinator's investigation
// message. The coordinator functions CoordinatorStep1, CoordinatorFinalize
// and CoordinatorInvestigate are pure functions of public messages, so in a
// deployment without a trusted coordinator every party runs them itself on
// the broadcast messages. ParticipantRecover rebuilds an output from the
// host secret key and the recovery data; the recovery acknowledgments let
// everyone confirm that all participants hold that data.
//
// Every function is deterministic in its arguments and safe for concurrent
// use. A party that crashes between rounds rebuilds its state by calling the
// same step again with the same randomness (persist random and aux_rand, not
// the state): it gets the same state and the same message, so nothing it
// already sent is contradicted.
//
// # Errors
//
// Every error of the spec is a Go type matched with errors.As and carrying
// the blamed participant (*FaultyParticipantError,
// *FaultyParticipantOrCoordinatorError, *InvalidHostPubkeyError, ...) or the
// coordinator (*FaultyCoordinatorError); BlameOf extracts it. The spec's
// structural ValueError is ErrInvalidInput.
//
// # Constant time
//
// Constant time in the host secret key, the session seed and everything
// derived from it: HostPubkeyGen; ParticipantStep1 (coefficient derivation,
// shares f(j+1), commitments a_k·G, the pop signature, the encryption nonce
// and pads — SHA-256, btcec.ModNScalar and mpc/secp's k·G and k·P only);
// ParticipantStep2 (decryption pads by ECDH with the host key, the share and
// its check secshare·G = pubshare, the CertEq signature through mpc/bip340);
// ParticipantInvestigate (decrypting and checking each partial share);
// ParticipantRecover and ParticipantRecoveryAckSign (same operations). The
// only secret-dependent outcomes are validity results that the protocol
// publishes anyway (a bad share, a key out of range). Secrets are zeroed
// after use; DKGOutput.Secshare is the caller's to Zero.
//
// Variable time, on public data only: parsing and adding commitments,
// public shares and nonces, pop and certificate verification (libsecp256k1
// through mpc/bip340 for the certificate), and the coordinator functions,
// CoordinatorRecover, ParamsHash and ParticipantRecoveryAcksVerify.
package chilldkg
