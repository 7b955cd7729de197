# oras-operator (Rust). `make demo` shows it working; `make test` is what CI runs.

CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
MUSL_TARGET := x86_64-unknown-linux-musl
TARGET_DIR ?= $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
POLICY_BUILD := $(TARGET_DIR)/$(WASM_TARGET)/policy/oras_policy.wasm
KWCTL := $(shell command -v kwctl 2>/dev/null)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
SHIP := $(CARGO) run -q -p oras-ship --
POLICY_SOURCES := $(shell find policy/src contract/src -name '*.rs') policy/Cargo.toml contract/Cargo.toml Cargo.toml Cargo.lock

.PHONY: all tools policy-demo images bench-agent bench-controller bench-replicas crd push-policy test fmt fmt-check lint unit-tests e2e-tests demo bench-policy agent-static clean \
	require-registry ship-tools dist-binaries push-images release test-binaries lint-workflows cluster-e2e fuzz

all: annotated-policy.wasm

## The policy compiled to wasm (Kubewarden convention: policy.wasm at the root).
policy.wasm: $(POLICY_SOURCES)
	$(CARGO) build -p oras-policy --target $(WASM_TARGET) --profile policy
	cp $(POLICY_BUILD) $@

## policy.wasm with its metadata embedded, as `kwctl annotate` writes it.
annotated-policy.wasm: policy.wasm metadata.yml README.md
ifdef KWCTL
	$(KWCTL) annotate -m metadata.yml -u README.md -o $@ policy.wasm
else
	$(SHIP) annotate -m metadata.yml -u README.md -o $@ policy.wasm
endif

## Push the annotated policy: make push-policy REGISTRY=host[:port]/path [PLAIN_HTTP=1]
push-policy: annotated-policy.wasm
ifndef REGISTRY
	$(error set REGISTRY=host[:port]/path, for example REGISTRY=ghcr.io/me/policies/oras-operator)
endif
ifdef KWCTL
	$(KWCTL) push annotated-policy.wasm $(REGISTRY):v$(VERSION)
else
	$(SHIP) push-policy $(if $(PLAIN_HTTP),--plain-http) annotated-policy.wasm $(REGISTRY):v$(VERSION)
endif

## The pinned upstream tools the tests run beside ours (oras Go CLI, helm, crane, a
## registry, etcd, CoreDNS, Kubernetes' binaries), built from their Go modules into a
## cache outside the repository (ORAS_TOOLS_DIR, default ~/.cache/oras-operator-rs/tools).
TOOLS_DIR := $(or $(ORAS_TOOLS_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/oras-operator-rs/tools)
tools:
	@scripts/tools.sh

## What CI runs: formatting, lints (code and workflows), and every test (host and wasm,
## the shipping tools, and against the upstream tools). Clippy lints the workspace during
## the tests' own build (clippy-driver as its compiler wrapper, every target, warnings
## denied, as `make lint`), which spares a second pass over every dependency.
CLIPPY_DRIVER := $(shell rustup which clippy-driver 2>/dev/null || command -v clippy-driver)
LINTED_CARGO := RUSTC_WORKSPACE_WRAPPER=$(CLIPPY_DRIVER) CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__ $(CARGO)
test: tools fmt-check lint-workflows policy.wasm test-binaries
	@test -x "$(CLIPPY_DRIVER)" || { echo "clippy-driver is missing: rustup component add clippy" >&2; exit 1; }
	$(LINTED_CARGO) test --workspace --all-targets --no-run
	$(LINTED_CARGO) test --workspace

unit-tests:
	$(CARGO) test --workspace --exclude oras-e2e

## The compiled policy through the waPC host, and the other end-to-end checks.
e2e-tests: policy.wasm
	$(CARGO) build -p oras-agent
	$(CARGO) test -p oras-e2e

fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml

fmt-check:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

## The two-step workflow of examples/workflow/ through the compiled policy and the
## local pod runner, against a real registry on 127.0.0.1 (installs docker-registry
## when run as root). `cargo run -p oras-e2e --bin policy-demo` shows every example
## request's answer.
demo:
	@sh e2e/scripts/demo-prerequisites.sh
	$(MAKE) --no-print-directory policy.wasm
	$(CARGO) build -q -p oras-agent
	$(CARGO) run -q -p oras-e2e --bin workflow-demo

## Every admission request under examples/requests/ through the policy, with its patch.
policy-demo: policy.wasm
	$(CARGO) run -q -p oras-e2e --bin policy-demo

## The previous version the benchmarks measure in the same run (REFERENCE=none: none),
## built by scripts/build-reference.sh into $(TARGET_DIR)/reference/.
REFERENCE ?= main

## One `validate` call through the waPC host, timed (release build), beside the policy
## of $(REFERENCE); where the time goes.
bench-policy: policy.wasm
	$(if $(filter none,$(REFERENCE)),,REFERENCE_POLICY=$$(scripts/build-reference.sh $(REFERENCE))/policy.wasm) \
	$(CARGO) run --release -p oras-e2e --bin policy-bench

## Push and pull 10,000 small files and 1 GiB with the agent, the agent of $(REFERENCE),
## the oras Go CLI, oras-py and curl; the hand-off from an application's exit to its push.
bench-agent:
	REFERENCE=$(REFERENCE) scripts/bench-agent.sh

## Pull throughput of concurrent agents through a cache on S3 with 1 and 2 replicas
## (moto, docker-registry, the release agent). The harness is light: built as for tests.
bench-replicas:
	$(CARGO) build --release -p oras-agent
	$(CARGO) bench --profile dev -p oras-e2e --bench replicas

## Regenerate the committed CRD from the controller's types.
crd:
	$(CARGO) run -q -p oras-controller --bin crdgen > examples/dist/01-crd.yaml

## The controller against a fake API server with 100 OrasCaches: reconciles and idle RSS.
bench-controller:
	$(CARGO) bench -p oras-controller --bench idle

## The agent and controller images (static binaries on an empty base); needs a running engine.
IMAGE_PREFIX ?= ghcr.io/converged-computing/oras-operator-rs
images:
	@docker info >/dev/null 2>&1 || { echo "no container engine answers (docker info fails): images need one" >&2; exit 1; }
	docker build -f agent/Dockerfile -t $(IMAGE_PREFIX)/oras-agent:$(VERSION) .
	docker build -f controller/Dockerfile -t $(IMAGE_PREFIX)/oras-controller:$(VERSION) .

## Shipping without a container engine. The static binaries are built for both
## platforms with cargo-zigbuild and zig from PyPI (pinned in scripts/ship-tools.txt,
## installed into a venv in the tools cache, named after the pins): the same C compiler
## on every machine, so the same commit gives the same binaries and image digests.
DIST_TARGETS := x86_64-unknown-linux-musl aarch64-unknown-linux-musl
DIST_BINARIES := oras-agent oras-controller
DIST_PROFILE ?= dist
# Cargo puts the dev profile's output under debug/.
DIST_PROFILE_DIR = $(if $(filter dev,$(DIST_PROFILE)),debug,$(DIST_PROFILE))
platform_of = $(if $(findstring aarch64,$(1)),linux/arm64,linux/amd64)
SHIP_TOOLS := scripts/ship-tools.txt
SHIP_VENV := $(TOOLS_DIR)/ship-tools-$(shell sha256sum $(SHIP_TOOLS) | cut -c1-12)
REVISION := $(shell git rev-parse HEAD 2>/dev/null)$(if $(shell git status --porcelain 2>/dev/null),-dirty)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
export SOURCE_DATE_EPOCH
# Where the checkout and Cargo's sources are is not part of what we ship.
CARGO_HOME_DIR := $(or $(CARGO_HOME),$(HOME)/.cargo)
DIST_RUSTFLAGS := --remap-path-prefix=$(CURDIR)=/oras-operator-rs --remap-path-prefix=$(CARGO_HOME_DIR)=/cargo
RELEASE_DIR := $(TARGET_DIR)/release
POLICY_REPOSITORY ?= $(REGISTRY)/policies/oras-operator
CHART_REPOSITORY ?= $(REGISTRY)/charts

require-registry:
	@test -n "$(REGISTRY)" || { echo 'set REGISTRY=host[:port]/path (add PLAIN_HTTP=1 for a plain-HTTP registry), for example REGISTRY=ghcr.io/me/oras-operator' >&2; exit 1; }

## cargo-zigbuild, zig, zizmor in a venv (not system-wide), a new one when the pins change.
ship-tools: $(SHIP_VENV)/ready
$(SHIP_VENV)/ready:
	python3 -m venv $(SHIP_VENV)
	$(SHIP_VENV)/bin/pip install -q -r $(SHIP_TOOLS)
	touch $@

## The $(DIST_BINARIES), static, for the $(DIST_TARGETS) ($(DIST_PROFILE) profile).
dist-binaries: ship-tools
	@for target in $(DIST_TARGETS); do \
	  rustup target list --installed 2>/dev/null | grep -qx $$target || { echo "the Rust target $$target is missing: rustup target add $$target" >&2; exit 1; }; \
	  PATH="$(SHIP_VENV)/bin:$$PATH" RUSTFLAGS="$(DIST_RUSTFLAGS)" $(CARGO) zigbuild --locked --profile $(DIST_PROFILE) --target $$target \
	    $(foreach b,$(DIST_BINARIES),-p $(b) --bin $(b)) || exit 1; \
	done

## Push both images, each an index over linux/amd64 and linux/arm64 tagged with the
## version: make push-images REGISTRY=host[:port]/path [PLAIN_HTTP=1]. Prints REF@sha256:...
push-images: require-registry dist-binaries
	@$(SHIP) push-images --registry "$(REGISTRY)" $(if $(PLAIN_HTTP),--plain-http) --revision "$(REVISION)" \
	  $(foreach t,$(DIST_TARGETS),$(foreach b,$(DIST_BINARIES),--binary $(call platform_of,$(t))=$(TARGET_DIR)/$(t)/$(DIST_PROFILE_DIR)/$(b)))

## What the image and release tests push (make test), built by the release's own recipe
## in the dev profile: without optimisation, and sharing build scripts and proc-macros
## with the tests' build. The agent for both platforms (the two-platform index), the
## controller for one (the release test's chart pin).
TEST_DIST := DIST_PROFILE=dev
test-binaries:
	@$(MAKE) --no-print-directory dist-binaries $(TEST_DIST) DIST_TARGETS=x86_64-unknown-linux-musl
	@$(MAKE) --no-print-directory dist-binaries $(TEST_DIST) DIST_TARGETS=aarch64-unknown-linux-musl DIST_BINARIES=oras-agent

## A real single-node cluster built on this machine (etcd, kube-apiserver, scheduler,
## controller-manager, kube-proxy, CoreDNS, a kubelet over containerd and runc on a private
## bridge), the example workflow run on it as real Jobs, torn down after (testkit/src/node.rs,
## e2e/tests/cluster.rs). As root, with Debian's containerd, runc,
## containernetworking-plugins, iptables, busybox-static and skopeo; not part of `make test`.
## It builds as `make test` does (the same binaries, the same linted test build), so after
## `make test` it compiles nothing.
cluster-e2e: tools policy.wasm
	@$(MAKE) --no-print-directory dist-binaries $(TEST_DIST) DIST_TARGETS=$(MUSL_TARGET)
	$(LINTED_CARGO) test --workspace --no-run
	ORAS_CLUSTER_BINARIES=$(TARGET_DIR)/$(MUSL_TARGET)/debug ORAS_SHIP=$(TARGET_DIR)/debug/ship \
	ORAS_REVISION=$(REVISION) $(LINTED_CARGO) test --workspace --test cluster -- --ignored --nocapture

## The parsers that face untrusted bytes under libFuzzer (fuzz/, cargo-fuzz): every
## target for FUZZ_SECONDS (default 300, which gives each over 10^6 executions on one core
## of a CI runner; see the README), its corpus first seeded from the fixtures. cargo-fuzz
## is installed from crates.io into the tools cache; the scratch files of the archive
## target go to /dev/shm when there is one. FUZZ_TARGETS="archive manifest" runs only
## those. CI runs it with FUZZ_SECONDS=5 (.ci/run).
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ := $(TOOLS_DIR)/cargo-fuzz-v$(CARGO_FUZZ_VERSION)/bin/cargo-fuzz
FUZZ_SECONDS ?= 300
FUZZ_TMPDIR := $(if $(wildcard /dev/shm),/dev/shm,$(or $(TMPDIR),/tmp))
$(CARGO_FUZZ):
	$(CARGO) install --locked --version $(CARGO_FUZZ_VERSION) --root $(TOOLS_DIR)/cargo-fuzz-v$(CARGO_FUZZ_VERSION) cargo-fuzz
fuzz: $(CARGO_FUZZ)
	fuzz/seed-corpus.sh
	CARGO_FUZZ=$(CARGO_FUZZ) TMPDIR=$(FUZZ_TMPDIR) FUZZ_TARGETS="$(FUZZ_TARGETS)" fuzz/run.sh $(FUZZ_SECONDS)

## actionlint (built by make tools) with shellcheck, and zizmor (PyPI), over the GitHub
## workflows.
WORKFLOWS ?= .github/workflows
lint-workflows: ship-tools
	@test -x $(TOOLS_DIR)/bin/actionlint || { echo "actionlint is missing from $(TOOLS_DIR)/bin: run make tools" >&2; exit 1; }
	@command -v shellcheck >/dev/null 2>&1 || { echo "shellcheck is missing (Debian: apt-get install shellcheck): actionlint checks the workflows' scripts with it" >&2; exit 1; }
	@status=0; \
	$(TOOLS_DIR)/bin/actionlint $(WORKFLOWS)/*.yml || status=1; \
	$(SHIP_VENV)/bin/zizmor --quiet --offline --no-progress --persona=pedantic $(WORKFLOWS)/*.yml || status=1; \
	exit $$status

## The images, the policy with its default agent image pinned to the agent just pushed,
## and the Helm chart with its controller and agent images pinned likewise:
## make release REGISTRY=host[:port]/path [PLAIN_HTTP=1]
release: require-registry
	@mkdir -p $(RELEASE_DIR)
	@$(MAKE) --no-print-directory -s push-images > $(RELEASE_DIR)/images.txt
	@agent=$$(grep '/oras-agent@' $(RELEASE_DIR)/images.txt) && \
	controller=$$(grep '/oras-controller@' $(RELEASE_DIR)/images.txt) && \
	ORAS_POLICY_DEFAULT_AGENT_IMAGE=$$agent $(CARGO) build -q --locked -p oras-policy --target $(WASM_TARGET) --profile policy && \
	cp $(POLICY_BUILD) $(RELEASE_DIR)/policy.wasm && \
	$(SHIP) annotate -m metadata.yml -u README.md -o $(RELEASE_DIR)/annotated-policy.wasm $(RELEASE_DIR)/policy.wasm && \
	policy=$$($(SHIP) push-policy $(if $(PLAIN_HTTP),--plain-http) $(RELEASE_DIR)/annotated-policy.wasm $(POLICY_REPOSITORY):v$(VERSION)) && \
	chart=$$($(SHIP) push-chart $(if $(PLAIN_HTTP),--plain-http) --revision "$(REVISION)" --controller-image $$controller --agent-image $$agent charts/oras-operator $(CHART_REPOSITORY)) && \
	printf 'agent image       %s\ncontroller image  %s\npolicy            %s\nchart             %s\n' "$$agent" "$$controller" "$$policy" "$$chart"

## The agent as one static binary.
agent-static:
	$(CARGO) build --release -p oras-agent --target $(MUSL_TARGET)
	@echo "built $(TARGET_DIR)/$(MUSL_TARGET)/release/oras-agent"

clean:
	$(CARGO) clean
	rm -f policy.wasm annotated-policy.wasm
