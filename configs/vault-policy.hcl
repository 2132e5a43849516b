# Least-privilege Vault policy for quorumd (DESIGN §6), for the default
# layout: KV v2 mount "secret", prefix "quorumd". With another mount or
# prefix, replace "secret/" and "quorumd/" in every path below.
#
#   vault policy write quorumd configs/vault-policy.hcl
#
# The daemon reads users, API key digests, policies and rules on requests,
# and writes users, API keys, policies, rules and their name indexes for the
# /admin/* routes (Vertex's policy administration happens through the API).

# Policies and rules (DESIGN §6) and the uniqueness indexes of their names:
# create (check-and-set), read, update (add/remove rules, name takeover).
path "secret/data/quorumd/policies/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/data/quorumd/rules/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/data/quorumd/policynames/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/data/quorumd/rulenames/*" {
  capabilities = ["create", "read", "update"]
}
# Listing (admin views, in-use checks) and deleting them.
path "secret/metadata/quorumd/policies/*" {
  capabilities = ["list", "delete"]
}
path "secret/metadata/quorumd/rules/*" {
  capabilities = ["list", "delete"]
}
path "secret/metadata/quorumd/policynames/*" {
  capabilities = ["delete"]
}
path "secret/metadata/quorumd/rulenames/*" {
  capabilities = ["delete"]
}

# Users, API keys (SHA-256 digests of their secrets) and the name index:
# create (new user, check-and-set), read, update (revocation, name
# takeover). No "list" on data paths is needed.
path "secret/data/quorumd/users/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/data/quorumd/apikeys/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/data/quorumd/names/*" {
  capabilities = ["create", "read", "update"]
}

# Listing users (bootstrap check, admin views) and deleting users for
# /admin/delete-user (all versions, through the metadata endpoint).
path "secret/metadata/quorumd/users/*" {
  capabilities = ["list", "delete"]
}
path "secret/metadata/quorumd/apikeys/*" {
  capabilities = ["delete"]
}
path "secret/metadata/quorumd/names/*" {
  capabilities = ["delete"]
}

# The one-time admin bootstrap claim (quorumctl, with the daemon's
# credentials): check-and-set create, read, update; release on failure.
path "secret/data/quorumd/bootstrap" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/quorumd/bootstrap" {
  capabilities = ["delete"]
}

# Token self-management (also granted by Vault's "default" policy, listed
# so the policy stands alone with token_no_default_policy).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/revoke-self" {
  capabilities = ["update"]
}
