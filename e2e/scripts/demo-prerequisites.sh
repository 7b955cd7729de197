#!/bin/sh
# What `make demo` needs besides the Rust toolchain: the wasm target for the policy, a C
# linker, and Debian's docker-registry. Installs what is missing when run as root (apt),
# otherwise says exactly what to install and fails.
set -eu

missing_packages=""
[ -x /usr/bin/docker-registry ] || missing_packages="$missing_packages docker-registry"
command -v cc >/dev/null 2>&1 || missing_packages="$missing_packages gcc libc6-dev"

if [ -n "$missing_packages" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "demo: installing$missing_packages"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing_packages
    else
        echo "demo: missing Debian packages:$missing_packages" >&2
        echo "demo: install them as root:  apt-get install -y$missing_packages" >&2
        exit 1
    fi
fi

if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx wasm32-wasip1; then
        echo "demo: adding the Rust target wasm32-wasip1 (the policy is built for it)"
        rustup target add wasm32-wasip1
    fi
elif ! rustc --print target-libdir --target wasm32-wasip1 >/dev/null 2>&1; then
    echo "demo: the Rust target wasm32-wasip1 is missing (rustup target add wasm32-wasip1)" >&2
    exit 1
fi
