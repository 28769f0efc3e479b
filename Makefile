# Synod's front doors. `make run` and `make test` work on a fresh machine: they install what they
# need (npm packages, including the pinned Node 24 runtime; Debian's etcd-client for etcdctl).
NODE := node_modules/.bin/node
VITEST := $(NODE) node_modules/vitest/vitest.mjs
TSC := $(NODE) node_modules/typescript/bin/tsc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all install npm-deps system-deps build typecheck run test test-raft bench soak e2e clean

all: test

install: npm-deps system-deps

npm-deps: node_modules/.synod-installed

# `npm install`, not `npm ci`: this npm refuses `ci` over the lock file's missing entries for other
# platforms' optional rollup binaries; `install` honours the lock and leaves it unchanged.
node_modules/.synod-installed: package.json package-lock.json
	npm install --no-audit --no-fund
	@$(NODE) --version | grep -q '^v24\.' || { echo "node_modules/.bin/node is not Node 24"; exit 1; }
	touch $@

# etcdctl (Debian's etcd-client) is the real client the integration tests and `make run` use; etcd
# itself (etcd-server) is the reference the differential test compares Synod's answers against.
system-deps:
	@if ! command -v etcdctl >/dev/null 2>&1 || ! [ -x /usr/bin/etcd ]; then \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y etcd-client etcd-server; fi

build: install typecheck

typecheck: npm-deps
	$(TSC) --noEmit -p .

run: build
	$(NODE) server/cli/synod.ts local --data-dir data

test: build
	$(VITEST) run

test-raft: npm-deps
	$(VITEST) run server/raft

clean:
	rm -rf data node_modules
