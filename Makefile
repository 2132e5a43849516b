# quorumd — build, test, bench, lint, demo.
GO        ?= go
BIN       := bin
PKGS      := ./...
# Short fuzz runs in CI: "package FuzzName" pairs, each run for FUZZTIME.
# A count, not a duration: Go 1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" failure when a -fuzztime duration expires
# (golang/go#75804, fixed in 1.27); a count never arms that deadline.
# 60,000 execs is 2-12 s per target on a 2-core machine.
FUZZTIME  ?= 60000x
FUZZ_TARGETS := ./cmd/quorumctl:FuzzParsePrivateKeyHex ./mpc/frost:FuzzParsePubShare ./mpc/frost:FuzzParsePubNonce ./mpc/frost:FuzzParseAggNonce ./mpc/frost:FuzzParsePartialSig ./mpc/frost:FuzzNonceAgg ./policy:FuzzParseAPIKey ./hsm:FuzzOpen ./daemon/store:FuzzStoredRecord ./daemon:FuzzDecodeObject ./daemon:FuzzDecodeImport ./daemon:FuzzDecodeSign ./daemon:FuzzParseDerivationPath ./mpc/envelope:FuzzUnmarshal ./mpc/bip340:FuzzVerify ./mpc/relay:FuzzRequest ./mpc/relay:FuzzParseQuery ./mpc/relay:FuzzParseCreate ./mpc/relay:FuzzDecodeFetch ./mpc/relay:FuzzParseSeatClaim ./mpc/chilldkg:FuzzCoordinatorStep1 ./mpc/chilldkg:FuzzParticipantStep2 ./mpc/chilldkg:FuzzParticipantInvestigate ./mpc/chilldkg:FuzzRecover ./mpc/ceremony:FuzzParseRecoveryData ./mpc/ceremony:FuzzRedealDeal ./daemon:FuzzDecodeBatchRooms ./daemon:FuzzDecodeBatchSign

.PHONY: all build test test-race test-timing fuzz bench bench-ratios lint demo deps softhsm clean check-units

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

deps:
	bash .ci/deps

softhsm:
	bash hsm/softhsm-init.sh .softhsm

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@! git grep -nE '^(<<<<<<<|>>>>>>>) ' -- . ':!*.md' || { echo "merge conflict markers committed"; exit 1; }
	$(GO) vet $(PKGS)

# The README's test command: lint, every test under the race detector, the
# constant-time tests without it (the race detector distorts timing), and
# short fuzz runs of every decoder.
test: deps lint check-units test-race test-timing fuzz

# systemd units: exposure ≤ 1.5 (systemd-analyze security --offline), verify,
# sysusers/tmpfiles applied to a scratch root.
check-units:
	bash .ci/check-units

test-race:
	$(GO) test -race -count=1 -timeout 45m $(PKGS)

# The constant-time tests and the 10,000-input btcec cross-checks run here,
# without the race detector.
test-timing:
	QUORUMD_TIMING=ci $(GO) test -p 1 -count=1 -run 'ConstantTime|MatchesBtcec' -timeout 20m ./mpc/...

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; done

# bench-ratios: the floor and the real thing in one run (`quorumctl bench
# all` against a demo quorum); the ratios land in docs/bench/ratios.txt, which is
# committed: a regression shows as a diff, not as a timed test failing.
bench-ratios:
	QUORUM_BENCH_OUT=$(CURDIR)/docs/bench/ratios.txt bash cmd/quorumctl/demo.sh bench 32 10s

bench: bench-ratios
	QUORUMD_TIMING=long $(GO) test -p 1 -run 'ConstantTime' -count=1 -timeout 60m ./mpc/...
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

demo: deps build
	bash cmd/quorumctl/demo.sh

clean:
	rm -rf $(BIN) .state .softhsm
