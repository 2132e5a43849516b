#!/usr/bin/env bash
# demo.sh [bench [CONCURRENCY [DURATION]] | serve | ha [bench [C [D]]]]
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
#     `signature: <128 hex>` and stops everything it started.
# Exits non-zero on any failure (the work dir and the logs are then kept).
#
# `demo.sh bench [C [D]]` runs the same setup, then `quorumctl bench import`
# and `quorumctl bench sign` (2-of-3, concurrency C=32, duration D=10s).
# `demo.sh serve` runs the same setup and keeps it running until Ctrl-C; it
# writes the URLs and API keys to .state/demo/current.env (see
# docs/quickstart.md) for trying the API with curl or quorumctl.
#
# Environment: QUORUM_DEMO_KEEP=1 keeps the work dir; QUORUM_DEMO_LOG_LEVEL
# (default info) sets the daemons' log level; SOFTHSM2_MODULE the PKCS#11
# module; QUORUM_DEMO_VAULT_MOUNT the KV v2 mount (default secret).
set -euo pipefail

mode=${1:-demo}
case $mode in
  demo | serve) ;;
  bench) bench_c=${2:-32}; bench_d=${3:-10s} ;;
  ha) exec bash "$(dirname "${BASH_SOURCE[0]}")/demo-ha.sh" "${@:2}" ;; # replicas and relays: demo-ha.sh
  *) echo "usage: $0 [bench [CONCURRENCY [DURATION]] | serve]" >&2; exit 2 ;;
esac

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
say "SoftHSM: three tokens in $work/softhsm"
for i in 0 1 2; do
  bash hsm/softhsm-init.sh "$work/softhsm" "demo-$i" 2>&1 | sed '/^export /d' | indent
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
cat >"$work/policy.json" <<'EOF'
{
  "allowed_operations": ["create_room", "create_key", "import_key_importer", "import_key_recipient",
                         "sign", "derive_tweak_pubkey", "export_id", "get_key", "delete_key"],
  "max_n": 16,
  "min_threshold": 1,
  "max_threshold": 16,
  "allowed_relay_addresses": [],
  "key_quota": 1000000
}
EOF

# --- relay ------------------------------------------------------------------------------
say "starting quorum-relay"
start relay "$bin/quorum-relay" -listen 127.0.0.1:0
relay_addr=$(listen_addr relay "${pids[-1]}")
echo "    relay: pid ${pids[-1]}, $relay_addr"

# --- daemons ------------------------------------------------------------------------------
urls=()
for i in 0 1 2; do
  d=$work/d$i
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
log:
  level: ${QUORUM_DEMO_LOG_LEVEL:-info}
EOF
  say "daemon $i: bootstrap admin, policy \"demo\" ($d/quorumd.yaml)"
  "$ctl" bootstrap-admin -config "$d/quorumd.yaml" -name admin >"$d/admin.txt"
  sed -n 's/^policy source: /    policy source: /p' "$d/admin.txt"
  "$ctl" put-policy -config "$d/quorumd.yaml" -name demo -file "$work/policy.json" "${operator_args[@]}" | indent
  start "quorumd-$i" "$bin/quorumd" -config "$d/quorumd.yaml"
  addr=$(listen_addr "quorumd-$i" "${pids[-1]}")
  urls+=("http://$addr")
  echo "    quorumd $i: pid ${pids[-1]}, http://$addr, token demo-$i"
done
echo "started pids: ${pids[*]}${vault_pid:+ $vault_pid}"
daemons=$(IFS=,; echo "${urls[*]}")
"$ctl" wait -daemons "$daemons" -timeout 60s | indent

# --- users --------------------------------------------------------------------------------
keys=()
for i in 0 1 2; do
  say "daemon $i: create user \"demo\" (GET /admin/create-user with the admin key)"
  admin_key=$(sed -n 's/^api_key: //p' "$work/d$i/admin.txt")
  QUORUMCTL_ADMIN_KEY=$admin_key "$ctl" create-user -daemon "${urls[$i]}" -name demo >"$work/d$i/user.txt"
  sed -n 's/^user_id: /    user_id: /p' "$work/d$i/user.txt"
  keys+=("$(sed -n 's/^api_key: //p' "$work/d$i/user.txt")")
done
export QUORUMCTL_KEYS
QUORUMCTL_KEYS=$(IFS=,; echo "${keys[*]}")

if [ "$mode" = serve ]; then
  {
    echo "# quorumd demo quorum (demo.sh serve, pid $$); valid while it runs"
    echo "export RELAY=$relay_addr"
    for i in 0 1 2; do
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

if [ "$mode" = bench ]; then
  say "bench import: 2-of-3, concurrency $bench_c, duration $bench_d"
  "$ctl" bench import -daemons "$daemons" -threshold 2 -c "$bench_c" -d "$bench_d" | indent
  say "bench sign: 2 of 3, concurrency $bench_c, duration $bench_d"
  "$ctl" bench sign -daemons "$daemons" -threshold 2 -signers 0,1 -c "$bench_c" -d "$bench_d" | indent
  exit 0
fi

# --- import -----------------------------------------------------------------------------------
say "import a freshly generated private key 2-of-3 (daemon 0 importer, HPKE-encrypted to its import key; daemons 1 and 2 recipients)"
"$ctl" import -daemons "$daemons" -threshold 2 -importer 0 -generate -encrypt -timeout 60s >"$work/import.txt"
indent <"$work/import.txt"
pubkey=$(sed -n 's/^pubkey: //p' "$work/import.txt")
key_ids=$(sed -n 's/^key_ids: //p' "$work/import.txt")
[[ $pubkey =~ ^[0-9a-f]{64}$ ]] || die "import printed no pubkey"

# --- sign and verify -------------------------------------------------------------------------
message=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
say "sign a random 32-byte message with daemons 0 and 2"
"$ctl" sign -daemons "$daemons" -key-ids "$key_ids" -signers 0,2 -msg "$message" -timeout 60s >"$work/sign.txt"
indent <"$work/sign.txt"
signature=$(sed -n 's/^signature: //p' "$work/sign.txt")
[[ $signature =~ ^[0-9a-f]{128}$ ]] || die "sign printed no signature"

say "verify the signature against the imported pubkey"
"$ctl" verify -pubkey "$pubkey" -msg "$message" -sig "$signature" | indent

echo "pubkey: $pubkey"
echo "message: $message"
echo "signature: $signature"
