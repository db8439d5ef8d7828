# The two commands README promises: `make run` and `make test`. Both install what is missing,
# build, and go.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
AEGIS := build/release/src/cli/aegis

.PHONY: run test deps build build-asan unit unit-asan policy-tests differential bench fuzz clean

deps:
	@scripts/install-deps.sh

build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

build-asan: deps
	@cmake --preset asan-ubsan >/dev/null
	@cmake --build --preset asan-ubsan -j $(JOBS)

run: build
	@scripts/run.sh

unit: build
	ctest --preset release -j $(JOBS)

unit-asan: build-asan
	ctest --preset asan-ubsan -j $(JOBS)

test: unit unit-asan
	@echo "make test: all suites passed"

# Engine and condition benchmarks with Cedar and cel-js; the HTTP decide API against nginx;
# the decide API with limits in memory and on Redis, with agent tokens, with audit and traces;
# the sidecar proxy against direct calls and nginx proxying the same upstream; the MCP gateways
# (proxy route and stdio wrapper) against calling server-everything directly; Envoy ext_authz
# gRPC Check. Each prints its table; none asserts.
bench: build
	@scripts/bench.sh
	@scripts/bench-http.sh
	@scripts/bench-limits.sh
	@scripts/bench-identity.sh
	@scripts/bench-record.sh
	@scripts/bench-proxy.sh
	@scripts/bench-mcp.sh
	@scripts/bench-grpc.sh
	@python3 bench/sdk/python_overhead.py
	@node bench/sdk/node_overhead.mjs

FUZZ_TARGETS := json_fuzz expr_fuzz bundle_fuzz call_fuzz extauthz_grpc_fuzz
FUZZ_SECONDS ?= 60

# Builds the libFuzzer targets with clang and runs each for FUZZ_SECONDS from its seed corpus.
fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	@scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build
