// Package policy decides who may call which quorumd endpoint with which
// parameters (DESIGN §6). Users, API keys and policies live in a Source:
// Vault's KV v2 engine (VaultSource, the production source) or a single JSON
// file (FileSource, for a single host without Vault). An Authorizer wraps a
// Source with a short-lived cache and answers one question per request:
// may this API key perform this operation with these parameters?
//
// Storage layout (the same logical records in both sources; under
// <mount>/data/<prefix>/ in Vault):
//
//	users/<user_id>     {user_id, name, admin, policy, created_at, api_keys}
//	apikeys/<lookup_id> {user_id, secret_sha256, created_at, revoked, revoked_at}
//	names/<name>        {user_id}            (uniqueness index of user names)
//	policies/<name>     {allowed_operations, max_n, min_threshold,
//	                     max_threshold, allowed_relay_addresses, key_quota}
//
// API keys look like "<lookup_id>.<secret>": a 16-hex-digit lookup id (not
// secret; it may be logged) and 43 base64url characters encoding 32 random
// bytes. Only SHA-256 of the secret text is stored; digests are compared in
// constant time, and the secret never reaches a source, a log line or an
// error string.
//
// Decisions, failures and their err_type (DESIGN §2) are documented on
// Authorizer.Authorize and on the Err* sentinels.
package policy
