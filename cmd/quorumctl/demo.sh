#!/usr/bin/env bash
# demo.sh [bench [CONCURRENCY [DURATION]] | serve | lifecycle | ha [bench [C [D]]]]
#
# `make demo`: a whole quorum on this machine, end to end.
#   - installs what is missing (softhsm2 via hsm/softhsm-init.sh) and builds
#     bin/quorumd, bin/quorum-relay and bin/quorumctl;
#   - in a fresh work dir under .state/demo/ (git-ignored): three SoftHSM
#     tokens (one per daemon, in one token store), a quorum-relay and three
#     quorumd on loopback ports chosen by the kernel, each with its own
#     token, state dir and policy source;
#   - policies come from Vault when VAULT_ADDR is set (token from VAULT_TOKEN
#     or ~/.vault-token) or when a `vault`/`bao` binary can start a dev
#     server, else from the embedded JSON file source; it says which;
#   - bootstraps an admin and writes a policy on each daemon's source,
#     creates a user through each daemon's API, imports a freshly generated
#     private key 2-of-3 (daemon 0 the importer, 1 and 2 recipients), signs a
#     random 32-byte message with daemons 0 and 2, verifies the signature;
#   - prints the lines `pubkey: <64 hex>`, `message: <hex>`,
#     `signature: <128 hex>`;
#   - generates a fresh key 2-of-3 with ChillDKG (POST /bip340/keygen on all
#     three daemons, no dealer), signs with daemons 1 and 2, verifies, and
#     prints the same three lines for it; then stops everything it started.
# Exits non-zero on any failure (the work dir and the logs are then kept).
#
# `demo.sh bench [C [D]]` runs the same setup, then `quorumctl bench all`:
# the floor measured from its components (daemon 0's HSM token and state
# dir, the relay), then 2-of-3 imports and signatures at concurrency 1 and C
# (default 32), D (default 10s) each, and one ratio line per figure, each
# run's followed by a "#" line of its CPU per operation, process by process
# (the pids of the relay and the daemons are passed to it); with
# QUORUM_BENCH_OUT set it also writes them there (`make bench`).
# `demo.sh lifecycle` starts a fourth daemon and continues after the
# signature (lifecycle_reshare): refresh → sign → reshare 2-of-3 to 2-of-4
# with daemon 3 → sign with daemons 3 and 1 → remove daemon 0 (2-of-3 among
# 1, 2, 3) → sign, printing pubkey, message and signature each time, the
# pubkey unchanged throughout.
# `demo.sh serve` runs the same setup and keeps it running until Ctrl-C; it
# writes the URLs and API keys to .state/demo/current.env (see
# docs/quickstart.md) for trying the API with curl or quorumctl.
#
# `demo.sh lifecycle` runs the same setup, then the key lifecycle
# (lifecycle_steps below): keygen 2-of-3 → sign → export daemon 1's backup
# (age-encrypted to the operator's key named in the demo policy) → delete daemon 1's share → restore
# it on a new daemon 3 with a new SoftHSM token → sign with daemons 0 and 3,
# printing every signature with its pubkey in the lines above.
#
# Environment: QUORUM_DEMO_KEEP=1 keeps the work dir; QUORUM_DEMO_LOG_LEVEL
# (default info) sets the daemons' log level; SOFTHSM2_MODULE the PKCS#11
# module; QUORUM_DEMO_VAULT_MOUNT the KV v2 mount (default secret).
set -euo pipefail

mode=${1:-demo}
case $mode in
  demo | serve | lifecycle) ;;
  bench) bench_c=${2:-32}; bench_d=${3:-10s} ;;
  ha) exec bash "$(dirname "${BASH_SOURCE[0]}")/demo-ha.sh" "${@:2}" ;; # replicas and relays: demo-ha.sh
  *) echo "usage: $0 [bench [CONCURRENCY [DURATION]] | serve | lifecycle | ha]" >&2; exit 2 ;;
esac

# Bench shape (bench mode only): QUORUM_BENCH_DAEMONS daemons, each playing
# QUORUM_BENCH_PER_DAEMON parties (key slots) of a QUORUM_BENCH_T-of-n key,
# n = daemons × per daemon; QUORUM_BENCH_OUT receives the ratios.
ndaemons=3
bench_per=1
bench_t=2
if [ "$mode" = bench ]; then
  ndaemons=${QUORUM_BENCH_DAEMONS:-3}
  bench_per=${QUORUM_BENCH_PER_DAEMON:-1}
  bench_t=${QUORUM_BENCH_T:-2}
fi
# Lifecycle mode adds a fourth daemon, which joins the key by a reshare.
[ "$mode" = lifecycle ] && ndaemons=4

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
umask 077

say() { printf '==> %s\n' "$*"; }
indent() { sed 's/^/    /'; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# --- tools ---------------------------------------------------------------------
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || die "go not found: install Go $(sed -n 's/^go //p' go.mod) or newer (https://go.dev/dl/)"
module=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

say "building bin/quorumd, bin/quorum-relay, bin/quorumctl"
go build -o bin/ ./cmd/...
bin=$root/bin
ctl=$bin/quorumctl

# --- work dir and cleanup ---------------------------------------------------------
mkdir -p .state/demo
work=$(mktemp -d "$root/.state/demo/run-XXXXXX")
pids=()  # processes started, stopped by cleanup
names=() # their names (aligned with pids)
logs=()  # logs shown on failure
vault_pid=

cleanup() {
  local status=$? name pid
  trap - EXIT INT TERM
  for pid in "${pids[@]}" $vault_pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}" $vault_pid; do
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ ${#pids[@]} -gt 0 ] || [ -n "$vault_pid" ]; then
    echo "stopped: ${pids[*]}${vault_pid:+ $vault_pid}"
  fi
  if [ "$(readlink "$root/.state/demo/current.env" 2>/dev/null)" = "$work/env" ]; then
    rm -f "$root/.state/demo/current.env"
  fi
  if [ "$status" -ne 0 ]; then
    for name in "${logs[@]}"; do
      echo "--- last lines of $name.log ---" >&2
      tail -n 15 "$work/$name.log" >&2 2>/dev/null || true
    done
    echo "demo FAILED (exit $status); work dir kept: $work" >&2
  elif [ "${QUORUM_DEMO_KEEP:-0}" = 1 ]; then
    echo "work dir kept: $work"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
if [ "$mode" = serve ]; then
  trap 'exit 0' INT TERM # Ctrl-C is how serve ends
else
  trap 'exit 130' INT
  trap 'exit 143' TERM
fi

# start NAME CMD...: runs CMD in the background with stderr to NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.log" &
  pids+=("$!")
  names+=("$name")
  logs+=("$name")
}

# listen_addr NAME PID: the address a process logged it listens on (it was
# given port 0, so the kernel picked a free one).
listen_addr() {
  local name=$1 pid=$2 addr=
  for _ in $(seq 300); do
    addr=$(sed -n 's/.*"msg":"\(listening\|quorumd serving\)".*"addr":"\([^"]*\)".*/\2/p' "$work/$name.log" | head -n 1)
    [ -n "$addr" ] && { echo "$addr"; return 0; }
    kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (see $work/$name.log)"
    sleep 0.1
  done
  die "$name did not start within 30s"
}

# --- HSM tokens -------------------------------------------------------------------
say "SoftHSM: $(if [ "$ndaemons" = 3 ]; then echo three; else echo "$ndaemons"; fi) tokens in $work/softhsm"
# new_token I: token demo-I in the demo's token store.
new_token() { bash hsm/softhsm-init.sh "$work/softhsm" "demo-$1" 2>&1 | sed '/^export /d' | indent; }
for i in $(seq 0 $((ndaemons - 1))); do
  new_token "$i"
done
export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf
[ -e "$module" ] || die "PKCS#11 module $module not found (set SOFTHSM2_MODULE)"

# --- policy source ------------------------------------------------------------------
policy_mode=embedded
vault_bin=
if [ -n "${VAULT_ADDR:-}" ]; then
  policy_mode=vault
  vault_token=${VAULT_TOKEN:-}
  if [ -z "$vault_token" ] && [ -s "$HOME/.vault-token" ]; then vault_token=$(cat "$HOME/.vault-token"); fi
  [ -n "$vault_token" ] || die "VAULT_ADDR is set but there is no VAULT_TOKEN (or ~/.vault-token)"
  printf '%s\n' "$vault_token" >"$work/vault.token"
  vault_addr=$VAULT_ADDR
  vault_what="Vault at $vault_addr (VAULT_ADDR)"
else
  for b in vault bao; do
    if command -v "$b" >/dev/null 2>&1; then vault_bin=$b; break; fi
  done
  if [ -n "$vault_bin" ]; then
    policy_mode=vault
    port=
    for p in $(seq 18200 18299); do
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
    done
    [ -n "$port" ] || die "no free port in 18200-18299 for a $vault_bin dev server"
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$work/vault.token"
    vault_addr=http://127.0.0.1:$port
    "$vault_bin" server -dev -dev-root-token-id="$(cat "$work/vault.token")" \
      -dev-listen-address="127.0.0.1:$port" >"$work/vault.out" 2>"$work/vault.log" &
    vault_pid=$!
    logs+=(vault)
    "$ctl" wait -daemons "$vault_addr" -path /v1/sys/health -timeout 30s | indent
    vault_what="a $vault_bin dev server at $vault_addr (started by the demo)"
  fi
fi
vault_mount=${QUORUM_DEMO_VAULT_MOUNT:-secret}
# The policy is written with the operator's token (the daemon's own Vault
# policy may only read policies).
operator_args=()
[ "$policy_mode" = vault ] && operator_args=(-vault-token-file "$work/vault.token")
run_id=$(basename "$work" | tr -cd 'A-Za-z0-9')
if [ "$policy_mode" = vault ]; then
  say "policy source: $vault_what, KV v2 mount $vault_mount, one prefix per daemon (quorumd-demo-$run_id-dN)"
else
  say "policy source: the embedded JSON file source, one file per daemon (no VAULT_ADDR, no vault/bao binary)"
fi

# Each daemon is an independent party with its own users and policy source,
# as three custodians would run them.
# The operator's backup key (age X25519): the policy lets users export
# backups encrypted to it; only quorumctl backup import with the identity
# file opens them.
"$ctl" backup identity -file "$work/operator.age" >"$work/operator.txt"
backup_pubkey=$(sed -n 's/^recipient_pubkey: //p' "$work/operator.txt")
[[ $backup_pubkey =~ ^[0-9a-f]{64}$ ]] || die "quorumctl backup identity printed no recipient_pubkey"
policy_max=16
[ "$mode" = bench ] && policy_max=255
cat >"$work/policy.json" <<EOF
{
  "allowed_operations": ["create_room", "create_key", "import_key_importer", "import_key_recipient",
                         "sign", "derive_tweak_pubkey", "export_id", "get_key", "delete_key",
                         "keygen", "backup_export", "backup_import"],
  "allow_backup_export": {"mode": "encrypted", "recipient_pubkey": "$backup_pubkey"},
  "max_n": $policy_max,
  "min_threshold": 1,
  "max_threshold": $policy_max,
  "allowed_relay_addresses": [],
  "key_quota": 1000000
}
EOF

# --- relay ------------------------------------------------------------------------------
say "starting quorum-relay"
relay_args=()
if [ "$mode" = bench ]; then # a load test creates a room per operation
  relay_args=(-max-rooms-per-client 1000000 -client-room-rate 100000 -client-room-burst 100000)
fi
start relay "$bin/quorum-relay" -listen 127.0.0.1:0 "${relay_args[@]}"
relay_addr=$(listen_addr relay "${pids[-1]}")
echo "    relay: pid ${pids[-1]}, $relay_addr"

# Bench mode lifts the per-user room rate (a load test creates a room per
# operation) and the party count, for large quorums.
limits_yaml=
if [ "$mode" = bench ]; then
  limits_yaml="limits:
  max_parties: 255
  user_rooms: 1000000
  user_room_rate: 100000
  user_room_burst: 100000"
fi

# --- daemons ------------------------------------------------------------------------------
urls=()
# start_daemon I: configures daemon I (token demo-I, its own state dir and
# policy source, an admin and the "demo" policy) and starts it.
start_daemon() {
  local i=$1 d=$work/d$1 policy_yaml addr
  mkdir -p "$d/state"
  if [ "$policy_mode" = vault ]; then
    policy_yaml="  source: vault
  default_user_policy: demo
  vault:
    address: $vault_addr
    mount: $vault_mount
    prefix: quorumd-demo-$run_id-d$i
    token_file: $work/vault.token"
  else
    policy_yaml="  source: embedded
  default_user_policy: demo
  embedded:
    file: $d/policy-source.json"
  fi
  cat >"$d/quorumd.yaml" <<EOF
server:
  listen: 127.0.0.1:0
  shutdown_timeout: 30s
state_dir: $d/state
hsm:
  module: $module
  token_label: demo-$i
  pin_file: $work/softhsm/demo-$i.pin
  key_label: quorumd-wrap
  create_key: true
policy:
$policy_yaml
relay:
  default_address: $relay_addr
ceremony:
  timeout: 30s
$limits_yaml
log:
  level: ${QUORUM_DEMO_LOG_LEVEL:-info}
EOF
  say "daemon $i: bootstrap admin, policy \"demo\" ($d/quorumd.yaml)"
  "$ctl" bootstrap-admin -config "$d/quorumd.yaml" -name admin >"$d/admin.txt"
  sed -n 's/^policy source: /    policy source: /p' "$d/admin.txt"
  "$ctl" put-policy -config "$d/quorumd.yaml" -name demo -file "$work/policy.json" "${operator_args[@]}" | indent
  start "quorumd-$i" "$bin/quorumd" -config "$d/quorumd.yaml"
  addr=$(listen_addr "quorumd-$i" "${pids[-1]}")
  urls[$i]="http://$addr"
  echo "    quorumd $i: pid ${pids[-1]}, http://$addr, token demo-$i"
  # QUORUM_DEMO_PROXY (the Go tests set it): a factory of validating proxies
  # (internal/apispec) answering the URL that reaches this daemon through
  # one, so every exchange of the demo is checked against docs/openapi.yaml.
  if [ -n "${QUORUM_DEMO_PROXY:-}" ]; then
    urls[$i]=$(curl -fsS "$QUORUM_DEMO_PROXY/proxy?target=http://$addr") || die "no validating proxy for daemon $i"
  fi
}
for i in $(seq 0 $((ndaemons - 1))); do
  start_daemon "$i"
done
echo "started pids: ${pids[*]}${vault_pid:+ $vault_pid}"
daemons=$(IFS=,; echo "${urls[*]}")
"$ctl" wait -daemons "$daemons" -timeout 60s | indent

# --- users --------------------------------------------------------------------------------
keys=()
# create_user I: user "demo" on daemon I; its API key goes to keys[I].
create_user() {
  local i=$1 admin_key
  say "daemon $i: create user \"demo\" (GET /admin/create-user with the admin key)"
  admin_key=$(sed -n 's/^api_key: //p' "$work/d$i/admin.txt")
  QUORUMCTL_ADMIN_KEY=$admin_key "$ctl" create-user -daemon "${urls[$i]}" -name demo >"$work/d$i/user.txt"
  sed -n 's/^user_id: /    user_id: /p' "$work/d$i/user.txt"
  keys[$i]=$(sed -n 's/^api_key: //p' "$work/d$i/user.txt")
}
for i in $(seq 0 $((ndaemons - 1))); do
  create_user "$i"
done
export QUORUMCTL_KEYS
QUORUMCTL_KEYS=$(IFS=,; echo "${keys[*]}")

# The import and the first signature use daemons 0..2 (a fourth, in
# lifecycle mode, joins later).
daemons3=$(IFS=,; echo "${urls[*]:0:3}")
keys3=$(IFS=,; echo "${keys[*]:0:3}")
if [ "$mode" = serve ]; then
  {
    echo "# quorumd demo quorum (demo.sh serve, pid $$); valid while it runs"
    echo "export RELAY=$relay_addr"
    for i in $(seq 0 $((ndaemons - 1))); do
      echo "export D$i=${urls[$i]}"
      echo "export ADMIN$i=$(sed -n 's/^api_key: //p' "$work/d$i/admin.txt")"
      echo "export KEY$i=${keys[$i]}"
    done
    echo "export QUORUMCTL_DAEMONS=$daemons"
    echo "export QUORUMCTL_KEYS=$QUORUMCTL_KEYS"
  } >"$work/env"
  ln -sfn "$work/env" "$root/.state/demo/current.env"
  say "serving; in another shell: source .state/demo/current.env   (Ctrl-C here stops everything)"
  grep -v -e '^export ADMIN' -e '^export KEY' -e '^export QUORUMCTL_KEYS' "$work/env" | indent
  echo "    (API keys: ADMIN0..2, KEY0..2 and QUORUMCTL_KEYS in the file)"
  while :; do
    for i in "${!pids[@]}"; do
      kill -0 "${pids[$i]}" 2>/dev/null || die "${names[$i]} exited (see $work/${names[$i]}.log)"
    done
    sleep 1
  done
fi

# sign_print PUBKEY DAEMONS KEYS KEY_IDS WHAT: signs a random 32-byte message
# with the given daemons (their API keys and key ids, comma-separated),
# verifies it against PUBKEY and prints the pubkey, message and signature
# lines.
sign_print() {
  local pubkey=$1 daemons=$2 keys=$3 key_ids=$4 what=$5 message signature
  message=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  say "sign a random 32-byte message with $what"
  "$ctl" sign -daemons "$daemons" -keys "$keys" -key-ids "$key_ids" -msg "$message" -timeout 60s >"$work/sign-last.txt"
  indent <"$work/sign-last.txt"
  signature=$(sed -n 's/^signature: //p' "$work/sign-last.txt")
  [[ $signature =~ ^[0-9a-f]{128}$ ]] || die "sign printed no signature"
  "$ctl" verify -pubkey "$pubkey" -msg "$message" -sig "$signature" | indent
  echo "pubkey: $pubkey"
  echo "message: $message"
  echo "signature: $signature"
}

# keygen_2of3: a fresh key 2-of-3 on daemons 0, 1, 2 (ChillDKG); sets
# kg_pubkey and kg_key_ids[0..2].
keygen_2of3() {
  say "keygen: a fresh key 2-of-3 with ChillDKG on daemons 0, 1 and 2 (no dealer; every daemon aggregates the broadcast messages itself)"
  "$ctl" keygen -daemons "$daemons3" -keys "$keys3" -threshold 2 -timeout 60s >"$work/keygen.txt"
  indent <"$work/keygen.txt"
  kg_pubkey=$(sed -n 's/^pubkey: //p' "$work/keygen.txt")
  [[ $kg_pubkey =~ ^[0-9a-f]{64}$ ]] || die "keygen printed no pubkey"
  IFS=, read -r -a kg_key_ids <<<"$(sed -n 's/^key_ids: //p' "$work/keygen.txt")"
}

# lifecycle_steps: keygen → sign → back up daemon 1's share → delete it →
# restore it on a new daemon 3 with a new token → sign with it. It leaves
# lc_pubkey, lc_daemons (d0,d3,d2), lc_keys and lc_key_ids for further steps
# (refresh, reshare) appended after it.
lifecycle_steps() {
  keygen_2of3
  lc_pubkey=$kg_pubkey
  sign_print "$lc_pubkey" "${urls[0]},${urls[1]}" "${keys[0]},${keys[1]}" "${kg_key_ids[0]},${kg_key_ids[1]}" "daemons 0 and 1"

  say "backup: export daemon 1's share, encrypted to the operator's age key"
  "$ctl" backup export -daemon "${urls[1]}" -key "${keys[1]}" -key-id "${kg_key_ids[1]}" \
    -file "$work/d1-backup.age" -identity "$work/operator.age" | indent
  say "delete daemon 1's share (DELETE /bip340/delete-key-share)"
  "$ctl" delete-key -daemon "${urls[1]}" -key "${keys[1]}" -key-id "${kg_key_ids[1]}" | indent

  local r=$ndaemons # a daemon index never used: a new daemon with a new token
  say "SoftHSM: a new token demo-$r for a new daemon $r"
  new_token "$r"
  start_daemon "$r"
  echo "started pids: ${pids[*]}${vault_pid:+ $vault_pid}"
  "$ctl" wait -daemons "${urls[$r]}" -timeout 60s | indent
  create_user "$r"
  say "restore daemon 1's backup on daemon $r (quorumctl decrypts it with the operator's identity)"
  "$ctl" backup import -daemon "${urls[$r]}" -key "${keys[$r]}" -file "$work/d1-backup.age" \
    -identity "$work/operator.age" >"$work/restore.txt"
  indent <"$work/restore.txt"
  local restored_pub restored_id
  restored_pub=$(sed -n 's/^pubkey: //p' "$work/restore.txt")
  restored_id=$(sed -n 's/^key_id: //p' "$work/restore.txt")
  [ "$restored_pub" = "$lc_pubkey" ] || die "the restored key has pubkey $restored_pub, not $lc_pubkey"
  lc_daemons="${urls[0]},${urls[$r]},${urls[2]}"
  lc_keys="${keys[0]},${keys[$r]},${keys[2]}"
  lc_key_ids="${kg_key_ids[0]},$restored_id,${kg_key_ids[2]}"
  sign_print "$lc_pubkey" "${urls[0]},${urls[$r]}" "${keys[0]},${keys[$r]}" "${kg_key_ids[0]},$restored_id" "daemons 0 and $r (the restored party)"
}

if [ "$mode" = bench ]; then
  # The processes whose CPU per operation the bench reports: relay, d0, d1, …
  # (and a Vault dev server the demo started).
  bench_pids=()
  for i in "${!pids[@]}"; do
    bench_pids+=("${names[$i]/#quorumd-/d}=${pids[$i]}")
  done
  [ -n "$vault_pid" ] && bench_pids+=("vault=$vault_pid")
  say "bench all: the floor, then $bench_t-of-$((ndaemons * bench_per)) import and sign at concurrency 1 and $bench_c, $bench_d each"
  "$ctl" bench all -daemons "$daemons" -parties-per-daemon "$bench_per" -threshold "$bench_t" -cs "$(if [ "$bench_c" = 1 ]; then echo 1; else echo "1,$bench_c"; fi)" -d "$bench_d" \
    -config "$work/d0/quorumd.yaml" -relay "$relay_addr" -pids "$(IFS=,; echo "${bench_pids[*]}")" ${QUORUM_BENCH_OUT:+-out "$QUORUM_BENCH_OUT"} | indent
  exit 0
fi

# --- key lifecycle (demo.sh lifecycle) ----------------------------------------------------
# lifecycle_sign WHAT DAEMONS KEYS KEY_IDS SIGNERS: sign a random message,
# verify it against the (unchanged) pubkey, print the three lines.
lifecycle_sign() {
  local what=$1 ds=$2 ks=$3 ids=$4 signers=$5 msg sig
  msg=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  say "sign a random message ($what)"
  QUORUMCTL_KEYS=$ks "$ctl" sign -daemons "$ds" -key-ids "$ids" -signers "$signers" -msg "$msg" -timeout 60s >"$work/sign-$what.txt"
  indent <"$work/sign-$what.txt"
  sig=$(sed -n 's/^signature: //p' "$work/sign-$what.txt")
  [[ $sig =~ ^[0-9a-f]{128}$ ]] || die "sign ($what) printed no signature"
  "$ctl" verify -pubkey "$pubkey" -msg "$msg" -sig "$sig" | indent
  echo "pubkey: $pubkey"
  echo "message: $msg"
  echo "signature: $sig"
}
# lifecycle_step WHAT OUT: checks the pubkey OUT printed is the key's and
# echoes its new key_ids.
lifecycle_step() {
  local what=$1 out=$2
  indent <"$out" >&2
  [ "$(sed -n 's/^pubkey: //p' "$out")" = "$pubkey" ] || die "$what changed the pubkey"
  sed -n 's/^key_ids: //p' "$out"
}
lifecycle_reshare() {
  local ids ids4 ids123 d123 k123
  say "refresh: daemons 0, 1, 2 deal sharings of zero (fresh shares, new key_ids, same key)"
  QUORUMCTL_KEYS=$keys3 "$ctl" refresh -daemons "$daemons3" -key-ids "$key_ids" -timeout 60s >"$work/refresh.txt"
  ids=$(lifecycle_step refresh "$work/refresh.txt")
  lifecycle_sign refresh "$daemons3" "$keys3" "$ids" 0,1
  say "reshare 2-of-3 to 2-of-4: daemon 3 joins as a new party"
  "$ctl" reshare -daemons "$daemons" -key-ids "$ids" -threshold 2 -timeout 60s >"$work/reshare-add.txt"
  ids4=$(lifecycle_step "reshare (add)" "$work/reshare-add.txt")
  lifecycle_sign "new daemon 3 with daemon 1" "$daemons" "$QUORUMCTL_KEYS" "$ids4" 3,1
  say "remove daemon 0: daemons 1, 2, 3 reshare 2-of-4 to 2-of-3 among themselves and delete their 2-of-4 shares"
  d123=$(IFS=,; echo "${urls[*]:1:3}")
  k123=$(IFS=,; echo "${keys[*]:1:3}")
  ids123=$(echo "$ids4" | cut -d, -f2-4)
  QUORUMCTL_KEYS=$k123 "$ctl" reshare -daemons "$d123" -key-ids "$ids123" -threshold 2 -delete-old -timeout 60s >"$work/reshare-remove.txt"
  ids=$(lifecycle_step "reshare (remove)" "$work/reshare-remove.txt")
  grep -q '^threshold: 2 of 3$' "$work/reshare-remove.txt" || die "removal did not give a 2-of-3 key"
  lifecycle_sign "after removing daemon 0" "$d123" "$k123" "$ids" 0,2
}
# --- import -----------------------------------------------------------------------------------
say "import a freshly generated private key 2-of-3 (daemon 0 importer, HPKE-encrypted to its import key; daemons 1 and 2 recipients)"
QUORUMCTL_KEYS=$keys3 "$ctl" import -daemons "$daemons3" -threshold 2 -importer 0 -generate -encrypt -timeout 60s >"$work/import.txt"
indent <"$work/import.txt"
pubkey=$(sed -n 's/^pubkey: //p' "$work/import.txt")
key_ids=$(sed -n 's/^key_ids: //p' "$work/import.txt")
[[ $pubkey =~ ^[0-9a-f]{64}$ ]] || die "import printed no pubkey"

# --- sign and verify -------------------------------------------------------------------------
message=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
say "sign a random 32-byte message with daemons 0 and 2"
QUORUMCTL_KEYS=$keys3 "$ctl" sign -daemons "$daemons3" -key-ids "$key_ids" -signers 0,2 -msg "$message" -timeout 60s >"$work/sign.txt"
indent <"$work/sign.txt"
signature=$(sed -n 's/^signature: //p' "$work/sign.txt")
[[ $signature =~ ^[0-9a-f]{128}$ ]] || die "sign printed no signature"

say "verify the signature against the imported pubkey"
"$ctl" verify -pubkey "$pubkey" -msg "$message" -sig "$signature" | indent

echo "pubkey: $pubkey"
echo "message: $message"
echo "signature: $signature"
if [ "$mode" = lifecycle ]; then
  lifecycle_reshare
fi

# --- keygen and sign with it ---------------------------------------------------------------
if [ "$mode" = lifecycle ]; then
  lifecycle_steps
else
  keygen_2of3
  sign_print "$kg_pubkey" "${urls[1]},${urls[2]}" "${keys[1]},${keys[2]}" "${kg_key_ids[1]},${kg_key_ids[2]}" "the generated key on daemons 1 and 2"
fi
