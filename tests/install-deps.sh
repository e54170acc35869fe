#!/bin/sh
# Installs what building and testing libsako needs on a Debian-like machine, when
# it is missing: a C compiler, pkg-config, SQLite's headers, libcheck, SWIG, nats-server, and a
# Python able to make virtual environments and compile extensions (and, when asked:
# wrk for the service benchmark, clang with libFuzzer for make fuzz). Idempotent and
# quiet when everything is present. Needs root (or sudo) only when it installs.
set -eu

missing=""
command -v cc >/dev/null 2>&1 || missing="$missing build-essential"
command -v make >/dev/null 2>&1 || missing="$missing make"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
pkg-config --exists sqlite3 2>/dev/null || missing="$missing libsqlite3-dev"
pkg-config --exists check 2>/dev/null || missing="$missing check libsubunit-dev"
command -v swig >/dev/null 2>&1 || missing="$missing swig"
# the replication tests start their own JetStream servers (bindings/python/tests/test_replication.py)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing="$missing nats-server"
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$missing python3-venv"
    python3 -c 'import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' \
        >/dev/null 2>&1 || missing="$missing python3-dev"
fi
if [ "${SAKO_WITH_WRK:-0}" = 1 ]; then
    command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
fi
# make fuzz only: clang with libFuzzer and the sanitizer runtimes.
if [ "${SAKO_WITH_CLANG:-0}" = 1 ]; then
    command -v clang >/dev/null 2>&1 || missing="$missing clang"
    echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; return (int)n * 0; }' \
        > /tmp/sako-fuzz-probe.c 2>/dev/null
    clang -fsanitize=fuzzer -o /tmp/sako-fuzz-probe /tmp/sako-fuzz-probe.c >/dev/null 2>&1 \
        || missing="$missing libclang-rt-dev"
    rm -f /tmp/sako-fuzz-probe /tmp/sako-fuzz-probe.c
fi

[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
