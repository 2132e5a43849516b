#!/usr/bin/env bash
# demo-ha.sh [demo | bench [CONCURRENCY [DURATION]]]   (run as `demo.sh ha ...`)
#
# The quorum of `make demo`, highly available on this machine:
#   - one throwaway PostgreSQL cluster (initdb in a temp dir, as nobody when
#     run as root; password auth on a free loopback port), one database per
#     party;
#   - one nats-server with JetStream, and two quorum-relay instances over it
#     (one relay deployment: same -name); every daemon lists both;
#   - three parties, each run as two quorumd replicas sharing the party's
#     database and SoftHSM token (key label quorumd-wrap);
#   - quorumctl names each party as replica|replica and fails over between
#     them.
# Demo: bootstraps an admin and a user per party, then imports a fresh key
# 2-of-3 with replica 1 of party 1 killed as the import starts and relay 0
# killed once the import's room exists (the daemons that list it first
# carry on through relay 1); then restarts that replica and relay 0, kills
# replica 0 of party 0 and signs with parties 0 and 1 (party 0 through its
# surviving replica, party 1 through both, the restarted one included),
# killing relay 1 once the signature's room exists; verifies the signature
# and prints `pubkey:`, `message:` and `signature:` lines. Everything
# started is stopped on exit.
#
# `bench [C [D]]`: the same set-up without kills, then `quorumctl bench
# import` and `bench sign` (2-of-3, concurrency C=16, duration D=10s).
# QUORUM_HA_REPLICAS (1 or 2, default 2) and QUORUM_HA_RELAYS (1 or 2,
# default 2) choose how many replicas per party and relay instances the
# clients and daemons use (docs/operations.md, "Scaling").
#
# Environment: QUORUM_DEMO_KEEP=1 keeps the work dir; QUORUM_DEMO_LOG_LEVEL
# (default info); SOFTHSM2_MODULE; PG_BINDIR (default the newest
# /usr/lib/postgresql/*/bin).
set -euo pipefail

mode=${1:-demo}
case $mode in
  demo) ;;
  bench) bench_c=${2:-16}; bench_d=${3:-10s} ;;
  *) echo "usage: demo.sh ha [bench [CONCURRENCY [DURATION]]]" >&2; exit 2 ;;
esac
replicas=${QUORUM_HA_REPLICAS:-2}
relays=${QUORUM_HA_RELAYS:-2}
[[ $replicas =~ ^[12]$ && $relays =~ ^[12]$ ]] || { echo "QUORUM_HA_REPLICAS and QUORUM_HA_RELAYS: 1 or 2" >&2; exit 2; }
if [ "$mode" = demo ] && { [ "$replicas" != 2 ] || [ "$relays" != 2 ]; }; then
  echo "the failover demo needs 2 replicas and 2 relays" >&2
  exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
umask 077

say() { printf '==> %s\n' "$*"; }
indent() { sed 's/^/    /'; }
die() { printf 'demo-ha: %s\n' "$*" >&2; exit 1; }

# --- tools ---------------------------------------------------------------------
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || die "go not found"
command -v nats-server >/dev/null 2>&1 || die "nats-server not found (bash .ci/deps, or apt-get install nats-server)"
pg_bin=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$pg_bin/initdb" ] || die "PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BINDIR)"
module=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

say "building bin/quorumd, bin/quorum-relay, bin/quorumctl"
go build -o bin/ ./cmd/...
bin=$root/bin
ctl=$bin/quorumctl

# --- work dir and cleanup ---------------------------------------------------------
mkdir -p .state/demo
work=$(mktemp -d "$root/.state/demo/ha-XXXXXX")
# PostgreSQL runs as nobody when we are root: its directory lives where
# nobody can reach it (the work dir is private to us).
pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/quorumd-demo-pg-XXXXXX")
pids=()  # processes started, stopped in reverse order by cleanup
names=() # their names (aligned with pids)
all_pids=()

cleanup() {
  local status=$? i pid sig
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[$i]}
    [ -n "$pid" ] || continue
    sig=TERM
    [ "${names[$i]}" = postgres ] && sig=INT # fast shutdown: no waiting for clients
    kill -"$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ ${#all_pids[@]} -gt 0 ] && echo "stopped: ${all_pids[*]}"
  if [ "$status" -ne 0 ]; then
    for name in "${names[@]}"; do
      echo "--- last lines of $name.log ---" >&2
      tail -n 15 "$work/$name.log" >&2 2>/dev/null || true
    done
    cp "$pg_dir/postgres.log" "$work/" 2>/dev/null || true
    echo "demo FAILED (exit $status); work dir kept: $work" >&2
  elif [ "${QUORUM_DEMO_KEEP:-0}" = 1 ]; then
    echo "work dir kept: $work"
  else
    rm -rf "$work"
  fi
  rm -rf "$pg_dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: runs CMD in the background with stderr to NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.log" &
  pids+=("$!")
  names+=("$name")
  all_pids+=("$!")
}

# pid_of NAME: the pid of the running process started as NAME.
pid_of() {
  local i
  for i in "${!names[@]}"; do
    [ "${names[$i]}" = "$1" ] && [ -n "${pids[$i]}" ] && { echo "${pids[$i]}"; return 0; }
  done
  die "no running $1"
}

# kill_one NAME: SIGKILLs NAME (a crash, not a shutdown) and reaps it.
kill_one() {
  local i
  for i in "${!names[@]}"; do
    if [ "${names[$i]}" = "$1" ] && [ -n "${pids[$i]}" ]; then
      kill -KILL "${pids[$i]}"
      wait "${pids[$i]}" 2>/dev/null || true
      echo "    killed $1 (pid ${pids[$i]}, SIGKILL)"
      # A killed replica's validating proxy goes with it: clients then see
      # the refused connection they fail over on, as without the proxy.
      if [ -n "${QUORUM_DEMO_PROXY:-}" ] && [[ $1 =~ ^quorumd-([0-9]+)-([0-9]+)$ ]]; then
        curl -fsS "$QUORUM_DEMO_PROXY/close?proxy=${url[${BASH_REMATCH[1]}.${BASH_REMATCH[2]}]}" >/dev/null
      fi
      pids[i]=
      return 0
    fi
  done
  die "no running $1"
}

# listen_addr NAME PID: the address a process logged it listens on (it was
# given port 0, so the kernel picked a free one).
listen_addr() {
  local name=$1 pid=$2 addr=
  for _ in $(seq 300); do
    addr=$(sed -n -e 's/.*"msg":"\(listening\|quorumd serving\)".*"addr":"\([^"]*\)".*/\2/p' \
      -e 's/.*Listening for client connections on \([0-9.]*:[0-9]*\).*/\1/p' "$work/$name.log" | head -n 1)
    [ -n "$addr" ] && { echo "$addr"; return 0; }
    kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (see $work/$name.log)"
    sleep 0.1
  done
  die "$name did not start within 30s"
}

free_port() {
  local p
  for p in $(shuf -i 20000-60999 -n 100); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  die "no free loopback port"
}

# --- PostgreSQL: one cluster, one database per party ---------------------------------
as_pg=()
if [ "$(id -u)" = 0 ]; then
  # postgres refuses to run as root.
  chown nobody: "$pg_dir"
  as_pg=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups --)
fi
pg_user=quorumd
pg_password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
pg_port=$(free_port)
say "PostgreSQL ($pg_bin): throwaway cluster in $pg_dir, 127.0.0.1:$pg_port, password auth"
printf '%s\n' "$pg_password" >"$pg_dir/pwfile"
mkdir "$pg_dir/sock"
[ ${#as_pg[@]} -eq 0 ] || chown nobody: "$pg_dir/pwfile" "$pg_dir/sock"
cd "$pg_dir" # nobody's working directory
(LC_ALL=C "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U "$pg_user" --pwfile "$pg_dir/pwfile" \
  --auth-host=scram-sha-256 --auth-local=scram-sha-256 -E UTF8 --locale=C --no-sync >"$work/initdb.log" 2>&1) ||
  die "initdb failed: $(tail -n 5 "$work/initdb.log")"
rm -f "$pg_dir/pwfile"
LC_ALL=C start postgres "${as_pg[@]}" "$pg_bin/postgres" -D "$pg_dir/data" \
  -c listen_addresses=127.0.0.1 -c port="$pg_port" -c unix_socket_directories="$pg_dir/sock" \
  -c max_connections=200 -c shared_buffers=32MB -c logging_collector=off
cd "$root"
for _ in $(seq 300); do
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
  kill -0 "$(pid_of postgres)" 2>/dev/null || die "postgres exited during start-up"
  sleep 0.1
done
"$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" || die "postgres not ready within 30s"
for i in 0 1 2; do
  PGPASSWORD=$pg_password "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U "$pg_user" "party$i"
done
echo "    postgres: pid $(pid_of postgres), databases party0, party1, party2"

# --- NATS and the relays ------------------------------------------------------------------
say "nats-server with JetStream (store in $work/nats)"
start nats nats-server -a 127.0.0.1 -p -1 -js -sd "$work/nats" -n quorumd-demo-ha
nats_addr=$(listen_addr nats "$(pid_of nats)")
echo "    nats-server: pid $(pid_of nats), nats://$nats_addr"
start_relay() { # start_relay R ADDR
  # bench creates a room per ceremony from one address, above the default 50/s
  start "relay-$1" "$bin/quorum-relay" -listen "$2" -name quorumd-demo-ha -nats-url "nats://$nats_addr" \
    -client-room-rate 10000 -client-room-burst 10000
}
relay_addrs=()
for r in $(seq 0 $((relays - 1))); do
  say "quorum-relay $r over NATS (-name quorumd-demo-ha)"
  start_relay "$r" 127.0.0.1:0
  relay_addrs+=("$(listen_addr "relay-$r" "$(pid_of "relay-$r")")")
  echo "    relay $r: pid $(pid_of "relay-$r"), ${relay_addrs[-1]}"
done
# relay_order K: the relay list starting at instance K. Replicas start at
# different instances, spreading the load; each fails over to the rest.
relay_order() {
  local k=$1 out=() j
  for ((j = 0; j < relays; j++)); do out+=("${relay_addrs[$(((k + j) % relays))]}"); done
  (IFS=,; echo "${out[*]}")
}

# --- SoftHSM: one token per party, shared by its replicas -----------------------------------
say "SoftHSM: three tokens in $work/softhsm"
echo "    one per party, shared by the party's replicas"
for i in 0 1 2; do
  bash hsm/softhsm-init.sh "$work/softhsm" "demo-$i" 2>&1 | sed '/^export /d' | indent
done
export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf
[ -e "$module" ] || die "PKCS#11 module $module not found (set SOFTHSM2_MODULE)"

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

# --- daemons: replica 0 of each party first (it creates the wrapping key) --------------------
declare -A url # url[i.r]: party i's replica r
config() { # config I R: writes replica R of party I's config
  local i=$1 r=$2 p=$work/p$1
  mkdir -p "$p/r$r/state"
  cat >"$p/r$r/quorumd.yaml" <<EOF
server:
  listen: 127.0.0.1:0
  shutdown_timeout: 30s
state_dir: $p/r$r/state
store: postgres
postgres:
  dsn_file: $p/pg-dsn
hsm:
  module: $module
  token_label: demo-$i
  pin_file: $work/softhsm/demo-$i.pin
  key_label: quorumd-wrap
  create_key: true
policy:
  source: embedded
  default_user_policy: demo
  embedded:
    file: $p/policy-source.json
relay:
  default_address: $(relay_order $(((i + r) % relays)))
ceremony:
  timeout: 30s
limits: # bench creates a room per ceremony, above the default 20/s a user
  user_room_rate: 10000
  user_room_burst: 10000
log:
  level: ${QUORUM_DEMO_LOG_LEVEL:-info}
EOF
}
start_replica() { # start_replica I R
  local name=quorumd-$1-$2 addr
  start "$name" "$bin/quorumd" -config "$work/p$1/r$2/quorumd.yaml"
  addr=$(listen_addr "$name" "$(pid_of "$name")")
  url[$1.$2]=http://$addr
  "$ctl" wait -daemons "http://$addr" -timeout 60s >/dev/null
  echo "    party $1 replica $2: pid $(pid_of "$name"), http://$addr"
  # QUORUM_DEMO_PROXY: as in demo.sh, every exchange through a validating proxy.
  if [ -n "${QUORUM_DEMO_PROXY:-}" ]; then
    url[$1.$2]=$(curl -fsS "$QUORUM_DEMO_PROXY/proxy?target=http://$addr") || die "no validating proxy for party $1 replica $2"
  fi
}
keys=()
for i in 0 1 2; do
  p=$work/p$i
  mkdir -p "$p"
  printf 'postgres://%s:%s@127.0.0.1:%s/party%s?sslmode=disable\n' "$pg_user" "$pg_password" "$pg_port" "$i" >"$p/pg-dsn"
  for r in $(seq 0 $((replicas - 1))); do config "$i" "$r"; done
  say "party $i: bootstrap admin, policy \"demo\", replica 0, user \"demo\""
  "$ctl" bootstrap-admin -config "$p/r0/quorumd.yaml" -name admin >"$p/admin.txt"
  "$ctl" put-policy -config "$p/r0/quorumd.yaml" -name demo -file "$work/policy.json" | indent
  start_replica "$i" 0
  QUORUMCTL_ADMIN_KEY=$(sed -n 's/^api_key: //p' "$p/admin.txt") "$ctl" create-user -daemon "${url[$i.0]}" -name demo >"$p/user.txt"
  keys+=("$(sed -n 's/^api_key: //p' "$p/user.txt")")
done
if [ "$replicas" = 2 ]; then
  say "second replicas (same database, token and policy file as replica 0)"
  for i in 0 1 2; do start_replica "$i" 1; done
fi
echo "started pids: ${all_pids[*]}"
export QUORUMCTL_KEYS
QUORUMCTL_KEYS=$(IFS=,; echo "${keys[*]}")
party() { # party I: the -daemons entry of party I (its replicas joined by |)
  local s=${url[$1.0]}
  [ "$replicas" = 2 ] && s+="|${url[$1.1]}"
  echo "$s"
}
daemons=$(party 0),$(party 1),$(party 2)

if [ "$mode" = bench ]; then
  say "bench import: 2-of-3, $replicas replica(s) per party, $relays relay(s), concurrency $bench_c, duration $bench_d"
  "$ctl" bench import -daemons "$daemons" -threshold 2 -c "$bench_c" -d "$bench_d" | indent
  say "bench sign: 2 of 3, $replicas replica(s) per party, $relays relay(s), concurrency $bench_c, duration $bench_d"
  "$ctl" bench sign -daemons "$daemons" -threshold 2 -signers 0,1 -c "$bench_c" -d "$bench_d" | indent
  exit 0
fi

# --- import, killing a replica and a relay ---------------------------------------------------
say "import a fresh private key 2-of-3 (party 0 importer); replica 1 of party 1 is killed as it starts, relay 0 once its room exists"
kill_one quorumd-1-1
"$ctl" import -daemons "$daemons" -threshold 2 -importer 0 -generate -timeout 120s >"$work/import.txt" 2>&1 &
import_pid=$!
for _ in $(seq 600); do
  grep -q '^room .* created' "$work/import.txt" && break
  kill -0 "$import_pid" 2>/dev/null || break
  sleep 0.05
done
grep -q '^room .* created' "$work/import.txt" || { cat "$work/import.txt" >&2; die "the import made no room"; }
in_flight=no
kill -0 "$import_pid" 2>/dev/null && in_flight=yes
kill_one relay-0
echo "    (the import was in flight when relay 0 died: $in_flight)"
wait "$import_pid" || { indent <"$work/import.txt"; die "import failed"; }
indent <"$work/import.txt"
pubkey=$(sed -n 's/^pubkey: //p' "$work/import.txt")
key_ids=$(sed -n 's/^key_ids: //p' "$work/import.txt")
[[ $pubkey =~ ^[0-9a-f]{64}$ ]] || die "import printed no pubkey"

# --- sign and verify, killing another replica --------------------------------------------------
say "restart replica 1 of party 1 and relay 0; kill replica 0 of party 0; sign with parties 0 and 1, relay 1 killed once the signature's room exists"
start_replica 1 1
start_relay 0 "${relay_addrs[0]}"
listen_addr relay-0 "$(pid_of relay-0)" >/dev/null
kill_one quorumd-0-0
message=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
"$ctl" sign -daemons "$daemons" -key-ids "$key_ids" -signers 0,1 -msg "$message" -timeout 120s >"$work/sign.txt" 2>&1 &
sign_pid=$!
for _ in $(seq 600); do
  grep -q '^room .* created' "$work/sign.txt" && break
  kill -0 "$sign_pid" 2>/dev/null || break
  sleep 0.05
done
grep -q '^room .* created' "$work/sign.txt" || { cat "$work/sign.txt" >&2; die "the signature made no room"; }
in_flight=no
kill -0 "$sign_pid" 2>/dev/null && in_flight=yes
kill_one relay-1
echo "    (the signature was in flight when relay 1 died: $in_flight)"
wait "$sign_pid" || { indent <"$work/sign.txt"; die "sign failed"; }
indent <"$work/sign.txt"
signature=$(sed -n 's/^signature: //p' "$work/sign.txt")
[[ $signature =~ ^[0-9a-f]{128}$ ]] || die "sign printed no signature"

say "verify the signature against the imported pubkey"
"$ctl" verify -pubkey "$pubkey" -msg "$message" -sig "$signature" | indent

echo "pubkey: $pubkey"
echo "message: $message"
echo "signature: $signature"
