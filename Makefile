# redis-k8s: build, package, lint and test the charm.
#
#   make demo    set up, build both archives and run the local deploy demo on each (scripts/demo.sh)
#   make test    set up, build redis-k8s.charm and run every test against it
#   make lint    rustfmt, shellcheck, clippy, rustdoc (warnings denied) and charm-proof on the unpacked .charm
#   make charm   build redis-k8s.charm (podspec: the static binary as ./dispatch, hooks/ as symlinks) and
#                redis-k8s-sidecar.charm (the same binary with sidecar/metadata.yaml and sidecar/manifest.yaml)
#   make build   build the static, stripped release binary only
#   make setup   install what the above need (Debian packages, charm-tools venv); idempotent
#   make clean   remove build outputs (keeps the .venv-tools/ that setup made)
#   make bench   hook benchmarks vs charms.reactive, ops and static floors (benches/README.md; ~10 min)
#   make bench-day2  what clients see during each day-2 operation, on juju-local (benches/DAY2.md; root)
#   make mutants mutation testing of the engine, layers, config/relation/auth and the tool runner (hours)

SHELL := /bin/bash

# The static binary. +crt-static is set for this target triple only, and the build names the triple with
# --target: that keeps the flag off proc-macros and build scripts (which must stay dynamic), and leaves
# plain `cargo build` / `cargo test` untouched.
TARGET := x86_64-unknown-linux-gnu
BIN := target/$(TARGET)/release/redis-k8s
STATIC_RUSTFLAGS := -C target-feature=+crt-static

CHARM := redis-k8s.charm
# What the archive holds besides dispatch and hooks/. actions.yaml only once the charm has actions;
# copyright because charm-proof warns (exit 100) without one.
CHARM_FILES := metadata.yaml config.yaml layer.yaml README.md copyright $(wildcard actions.yaml)
# The sidecar archive (Juju 3.1-4.0): the same binary and config/actions, its own metadata.yaml and a
# manifest.yaml; no hooks/ (Juju 3 runs dispatch) and no layer.yaml (the docker-resource layer is podspec-only).
SIDECAR_CHARM := redis-k8s-sidecar.charm
SIDECAR_STAGE := target/sidecar-charm
SIDECAR_FILES := config.yaml README.md copyright $(wildcard actions.yaml)

APT_PACKAGES := redis-server zip unzip bubblewrap iproute2 python3-venv shellcheck
VENV := .venv-tools
CHARM_TOOLS_VERSION := 3.0.9
CHARMS_REACTIVE_VERSION := 1.5.3
CHARM_PROOF := $(VENV)/bin/charm-proof
# charm-proof itself, run so that it can read binary hooks (see the script's docstring).
PROOF := $(VENV)/bin/python scripts/charm-proof.py
PROOF_DIR := target/charm-proof/redis-k8s

.PHONY: setup build charm lint test demo clean bench bench-quick bench-day2 mutants

setup:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_PACKAGES) </dev/null; \
	fi
	@if ! [ -x $(CHARM_PROOF) ]; then \
	  echo "setup: creating $(VENV)/ with charm-tools $(CHARM_TOOLS_VERSION)"; \
	  rm -rf $(VENV) && python3 -m venv $(VENV) && \
	  $(VENV)/bin/pip install --quiet --disable-pip-version-check charm-tools==$(CHARM_TOOLS_VERSION); \
	fi
	@if ! $(VENV)/bin/python -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("charms.reactive"))' 2>/dev/null; then \
	  echo "setup: adding charms.reactive $(CHARMS_REACTIVE_VERSION) to $(VENV)/ (the requirer tests drive it)"; \
	  $(VENV)/bin/pip install --quiet --disable-pip-version-check charms.reactive==$(CHARMS_REACTIVE_VERSION); \
	fi

build:
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="$(STATIC_RUSTFLAGS)" \
	  cargo build --release --target $(TARGET)

# zip -y stores hooks/* as symlinks (to ../dispatch), -X leaves out uid/gid and extra timestamps.
charm: build
	cp $(BIN) dispatch
	chmod 0755 dispatch
	rm -f $(CHARM)
	zip -q -X -y $(CHARM) $(CHARM_FILES) dispatch hooks/* $(wildcard actions/*)
	@echo "$(CHARM): $$(stat -c %s $(CHARM)) bytes; dispatch: $$(stat -c %s dispatch) bytes"
	rm -rf $(SIDECAR_STAGE) $(SIDECAR_CHARM) && mkdir -p $(SIDECAR_STAGE)
	cp $(SIDECAR_FILES) sidecar/metadata.yaml sidecar/manifest.yaml dispatch $(SIDECAR_STAGE)/
	cd $(SIDECAR_STAGE) && zip -q -X $(CURDIR)/$(SIDECAR_CHARM) metadata.yaml manifest.yaml $(notdir $(SIDECAR_FILES)) dispatch
	@echo "$(SIDECAR_CHARM): $$(stat -c %s $(SIDECAR_CHARM)) bytes"

# Every shell script we ship or run: the pod's scripts (their rendered, inlined form is checked by the podspec
# tests), the demo, the benchmark drivers and the fake hook tool.
SHELL_SCRIPTS := $(wildcard src/redis/pod/*.sh scripts/*.sh benches/*.sh) benches/fake-tools/fake-tool

lint: setup charm
	cargo fmt --all -- --check
	shellcheck -x -s sh $(filter src/redis/pod/%,$(SHELL_SCRIPTS))
	shellcheck $(filter-out src/redis/pod/%,$(SHELL_SCRIPTS))
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p redis-k8s --document-private-items --features testing --quiet
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --exclude redis-k8s --quiet
	rm -rf $(PROOF_DIR) && mkdir -p $(PROOF_DIR)
	unzip -q $(CHARM) -d $(PROOF_DIR)
	$(PROOF) $(PROOF_DIR)

# The e2e tests drive the built charm through juju-local (target/debug/juju-local).
test: setup charm
	cargo build -p juju-local
	REDIS_K8S_CHARM=$(CURDIR)/$(CHARM) REDIS_K8S_SIDECAR_CHARM=$(CURDIR)/$(SIDECAR_CHARM) JUJU_LOCAL_BIN=$(CURDIR)/target/debug/juju-local cargo test --workspace

demo: setup charm
	./scripts/demo.sh ./$(CHARM)
	DEMO_JUJU_VERSION=3.6.0 ./scripts/demo.sh ./$(SIDECAR_CHARM)

clean:
	cargo clean
	rm -f dispatch $(CHARM) $(SIDECAR_CHARM)

# Writes benches/RESULTS.md; bench-quick (about a minute) writes the uncommitted benches/RESULTS-quick.md.
bench:
	benches/run.sh

bench-quick:
	benches/run.sh --quick

# Mutation testing (cargo-mutants) of the engine, the layers, the Redis config/relation/auth logic and the tool
# runner, against the fast suites. Not part of `make test`: about 90 s a mutant here (hours in all). Narrow it with
# MUTANT_FILES='-f src/juju/runner.rs'; the report is in mutants.out/ (outcomes.json, missed.txt, caught.txt).
# The podspec tests that run real processes and the test that needs .venv-tools (not copied) are skipped, and so
# are the suite binary's crash_points, fault_matrix and packaging modules (the fast suites are the rest).
MUTANT_FILES ?= -f 'src/reactive/*.rs' -f 'src/layers/*.rs' -f src/redis/config.rs -f src/redis/relation.rs \
  -f src/redis/auth.rs -f src/juju/runner.rs
MUTANT_TESTS := --lib --test suite
MUTANT_SKIP := --skip redis::pod::tests:: --skip one_unit_both_families \
  --skip crash_points:: --skip fault_matrix:: --skip packaging::
mutants: setup
	@command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
	cargo mutants $(MUTANT_FILES) -- $(MUTANT_TESTS) -- $(MUTANT_SKIP)

# Writes benches/DAY2.md; DAY2_ROUNDS=N repeats every operation N times.
bench-day2: setup charm
	cargo build -p juju-local
	REDIS_K8S_CHARM=$(CURDIR)/$(CHARM) REDIS_K8S_SIDECAR_CHARM=$(CURDIR)/$(SIDECAR_CHARM) JUJU_LOCAL_BIN=$(CURDIR)/target/debug/juju-local cargo bench --bench day2
