# oras-operator (Rust). `make demo` shows it working; `make test` is what CI runs.

CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
MUSL_TARGET := x86_64-unknown-linux-musl
TARGET_DIR ?= $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
POLICY_BUILD := $(TARGET_DIR)/$(WASM_TARGET)/policy/oras_policy.wasm
KWCTL := $(shell command -v kwctl 2>/dev/null)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
POLICY_SOURCES := $(shell find policy/src contract/src -name '*.rs') policy/Cargo.toml contract/Cargo.toml Cargo.toml Cargo.lock

.PHONY: all tools policy-demo images bench-agent bench-controller crd push-policy test fmt fmt-check lint unit-tests e2e-tests demo bench-policy agent-static clean

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
	$(CARGO) run -q -p oras-policy-tool -- annotate -m metadata.yml -u README.md -o $@ policy.wasm
endif

## Push the annotated policy: make push-policy REGISTRY=host[:port]/path [PLAIN_HTTP=1]
push-policy: annotated-policy.wasm
ifndef REGISTRY
	$(error set REGISTRY=host[:port]/path, for example REGISTRY=ghcr.io/me/policies/oras-operator)
endif
ifdef KWCTL
	$(KWCTL) push annotated-policy.wasm $(REGISTRY):v$(VERSION)
else
	$(CARGO) run -q -p oras-policy-tool -- push $(if $(PLAIN_HTTP),--plain-http) annotated-policy.wasm $(REGISTRY):v$(VERSION)
endif

## The pinned upstream tools the tests run beside ours (oras Go CLI, helm, crane, a
## registry, etcd, CoreDNS, Kubernetes' binaries), built from their Go modules into a
## cache outside the repository (ORAS_TOOLS_DIR, default ~/.cache/oras-operator-rs/tools).
tools:
	@scripts/tools.sh

## What CI runs: formatting, lints, and every test (host and wasm, and against the
## upstream tools).
test: tools fmt-check lint policy.wasm
	$(CARGO) test --workspace

unit-tests:
	$(CARGO) test --workspace --exclude oras-e2e

## The compiled policy through the waPC host, and the other end-to-end checks.
e2e-tests: policy.wasm
	$(CARGO) build -p oras-agent
	$(CARGO) test -p oras-e2e

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

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

## One `validate` call through the waPC host, timed (release build).
bench-policy: policy.wasm
	$(CARGO) run --release -p oras-e2e --bin policy-bench

## Push and pull 10,000 small files and 1 GiB with the agent and with oras-py (release build).
bench-agent:
	scripts/bench-agent.sh

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

## The agent as one static binary.
agent-static:
	$(CARGO) build --release -p oras-agent --target $(MUSL_TARGET)
	@echo "built $(TARGET_DIR)/$(MUSL_TARGET)/release/oras-agent"

clean:
	$(CARGO) clean
	rm -f policy.wasm annotated-policy.wasm
