# etcd-aws: a self-healing etcd cluster on AWS.
#
#   make demo    the main job on the local AWS stand-in (sets everything up first)
#   make test    fmt check, clippy -D warnings, and every test (sets everything up first)
#   make bench   benchmarks against the standard tools -> docs/benchmarks.md (BENCH_ARGS=--quick for a smoke run)
#   make docs    docs/settings.md from the programs' own flags (a test fails when it is stale)
#   make cost    what a stack costs a month, measured on the stand-in -> docs/benchmarks.md (COST_ARGS=--help)
#   make soak    random faults against a cluster under a checking workload (SOAK_ARGS="--duration 1h --seed N")
#   make boot-check  nodes that boot as EC2 instances: systemd, cloud-init's user-data, IMDSv2 (Docker)
#
# Set-up is idempotent and project-local: a Python venv in .venv with pinned
# moto, Debian's etcd packages (pinned in bootstrap/image/debian-packages.lock)
# in .tools/etcd/<version> with 3.5.30's tools linked into .tools/bin, and
# protoc, shellcheck and systemd-analyze from the system packages when they are
# missing.

SHELL := /bin/bash

# The etcd that tests, demo, benchmarks and the image run (one of the lock's
# releases); the others are for the upgrade scenario. Defined before the
# include: the template's CFN_ENV is expanded where it is defined.
LOCAL_ETCD := 3.5.30

# template, package, deploy (and the scanner versions the template tests use)
include template/template.mk
VENV := .venv
TOOLS := .tools/bin
PIP := $(VENV)/bin/pip
MOTO_VERSION := 5.2.5
PY_REQUIREMENTS := moto[server]==$(MOTO_VERSION) $(TEMPLATE_PY_REQUIREMENTS)
DEBIAN_LOCK := bootstrap/image/debian-packages.lock
# The scenario tests each run moto and several etcd processes: bound how many
# run at once on a small machine.
TEST_THREADS ?= 4

.PHONY: setup demo test lint fmt-check clippy build unit-test
.DEFAULT_GOAL := help

help:
	@sed -n '2,12p' Makefile | sed 's/^# \{0,1\}//'

setup: $(VENV)/.installed .tools/.etcd .tools/.protoc $(TEMPLATE_CHECK_TOOLS)

$(VENV)/.installed: Makefile
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check $(PY_REQUIREMENTS)
	touch $@

# Debian's etcd packages, fetched with a project-local apt configuration,
# checked against their pinned SHA-256 and extracted into .tools/etcd/<version>
# (see the script); the $(LOCAL_ETCD) tools are linked into .tools/bin.
.tools/.etcd: $(DEBIAN_LOCK) bootstrap/image/debian-etcd.sh
	bootstrap/image/debian-etcd.sh fetch
	mkdir -p $(TOOLS)
	for tool in etcd etcdctl etcdutl; do ln -sfn ../etcd/$(LOCAL_ETCD)/usr/bin/$$tool $(TOOLS)/$$tool; done
	@echo "etcd for tests, demo and benchmarks: $$($(TOOLS)/etcd --version | head -1)"
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

# With cargo-nextest (when the machine has it) every test of every binary
# shares the TEST_THREADS slots: the scenario binaries no longer wait for each
# other, which took 10.5 of a cold run's 25 minutes here as cargo test and 6.7
# with nextest. nextest runs no doc tests, so those run after it.
test: setup lint build
	@if cargo nextest --version >/dev/null 2>&1; then \
	  cargo nextest run --workspace --no-fail-fast --test-threads=$(TEST_THREADS) && \
	  cargo test --workspace --doc; \
	else \
	  cargo test --workspace -- --test-threads=$(TEST_THREADS); \
	fi
	@# The partition scenarios run each instance as a container of the image,
	@# and one boot scenario boots each from the stack's user-data (the others
	@# are in make boot-check); they need a Docker engine, and CI (CI=true)
	@# insists on one.
	@if timeout 20 docker version >/dev/null 2>&1; then \
	  IMAGE_PROFILE=ci-image IMAGE_ARCHS=amd64 $(MAKE) --no-print-directory image && \
	  ETCD_AWS_IMAGE=$(IMAGE) cargo test -p etcd-aws-tests --test container_partitions -- --ignored --test-threads=$(CONTAINER_TEST_THREADS) && \
	  $(MAKE) --no-print-directory boot-image && \
	  cargo test -p etcd-aws-tests --test boot_scenarios -- --ignored --exact $(BOOT_IN_MAKE_TEST); \
	elif [ "$${CI:-}" = true ]; then \
	  echo "FAILED: CI=true needs the container partition and boot tests, but no Docker engine answers" >&2; exit 1; \
	else \
	  echo "SKIPPED: the container partition and boot tests (tests/tests/container_partitions.rs, boot_scenarios.rs): no Docker engine answers"; \
	fi

# The node agent's container image (Dockerfile): etcd-aws, Debian's etcd
# binaries and the libraries they need on scratch, for amd64 and arm64, built
# by bootstrap/image/build.sh.
#   make image                                      builds $(IMAGE) (amd64, also etcd-aws:latest)
#                                                   and $(IMAGE)-arm64 (etcd-aws:latest-arm64)
#   make image IMAGE_ARCHS=amd64                    one architecture only (make test's)
#   make push-image REGISTRY=registry.example.com/team   tags the amd64 one $(REGISTRY)/$(IMAGE) and pushes
IMAGE ?= etcd-aws:$(shell sed -n 's/^version = "\(.*\)"/\1/p' bootstrap/Cargo.toml | head -1)
IMAGE_ARCHS ?= amd64 arm64
# Three containers and a moto per scenario.
CONTAINER_TEST_THREADS ?= 2

.PHONY: image push-image
# The arm64 image's agent is `make package`'s, built with the pinned cargo-lambda.
image: setup $(if $(filter arm64,$(IMAGE_ARCHS)),package-setup)
	ETCD_RELEASE=$(LOCAL_ETCD) DIST=$(DIST) IMAGE_ARCHS="$(IMAGE_ARCHS)" bootstrap/image/build.sh $(IMAGE)

push-image:
	@test -n "$(REGISTRY)" || { echo "usage: make push-image REGISTRY=<registry host>/<namespace>" >&2; exit 2; }
	IMAGE_ARCHS=amd64 $(MAKE) --no-print-directory image
	docker tag $(IMAGE) $(REGISTRY)/$(IMAGE)
	docker push $(REGISTRY)/$(IMAGE)

# Benchmarks against the standard tools (docs/benchmarks.md; not part of make
# test). They need the AWS CLI, pinned here to the version whose botocore is
# the one moto's venv already has, and release builds of the programs they run.
AWSCLI_VERSION := 1.36.40
BENCH_PY_REQUIREMENTS := awscli==$(AWSCLI_VERSION)
BENCH_ARGS ?=

.PHONY: bench bench-setup
bench-setup: setup $(VENV)/.bench-installed

$(VENV)/.bench-installed: Makefile $(VENV)/.installed
	$(PIP) install --quiet --disable-pip-version-check $(BENCH_PY_REQUIREMENTS)
	touch $@

# The functions measured are the packaged ones (`make package`, cargo lambda
# --release) of this machine's architecture; the zip sizes are the arm64 ones.
HOST_PACKAGE_ARCH := $(if $(filter aarch64,$(shell uname -m)),arm64,x86_64)

bench: bench-setup package
	@# Two builds: one with the runner would unify features and rebuild the agent.
	cargo build --release -p etcd-aws
	cargo build --release -p etcd-aws-bench --bin bench
	DIST=$(DIST) \
	  ETCD_AWS_BACKUP_BIN=$(CURDIR)/$(DIST)/$(HOST_PACKAGE_ARCH)/lambda/etcd-aws-backup/bootstrap \
	  ETCD_AWS_LIFECYCLE_BIN=$(CURDIR)/$(DIST)/$(HOST_PACKAGE_ARCH)/lambda/etcd-aws-lifecycle/bootstrap \
	  $${CARGO_TARGET_DIR:-target}/release/bench $(BENCH_ARGS)

# The tables of every program's flags and settings, from their clap definitions.
.PHONY: docs
docs:
	cargo run --quiet -p etcd-aws-docs --bin settings-doc -- --output docs/settings.md

# What a stack costs a month (docs/benchmarks.md, "What it costs"; not part
# of make test): the packaged functions (this machine's architecture only)
# and the release agent on the stand-in, idle and under writes, priced per
# way of deploying.
COST_ARGS ?=

.PHONY: cost
cost: setup
	$(MAKE) --no-print-directory package PACKAGE_ARCHS=$(HOST_PACKAGE_ARCH)
	cargo build --release -p etcd-aws
	cargo build --release -p etcd-aws-bench --bin cost
	ETCD_AWS_BACKUP_BIN=$(CURDIR)/$(DIST)/$(HOST_PACKAGE_ARCH)/lambda/etcd-aws-backup/bootstrap \
	  ETCD_AWS_LIFECYCLE_BIN=$(CURDIR)/$(DIST)/$(HOST_PACKAGE_ARCH)/lambda/etcd-aws-lifecycle/bootstrap \
	  $${CARGO_TARGET_DIR:-target}/release/cost $(COST_ARGS)

# The arm64 artifacts as users deploy them, checked on this x86_64 machine
# (not part of make test, which must fit CI's budget; see docs/development.md, "Packages and cross-compiling"):
# `make package`, then
#   - the arm64 agent runs the nodes of a harness cluster and both arm64
#     functions serve invocations through the Runtime API emulator, all under
#     user-mode emulation (tests/tests/arm64_artifacts.rs);
#   - `cargo lambda deploy` of each arm64 function replaces the code of a stack
#     created in moto's CloudFormation (template/cli/tests/stand_in.rs);
#   - `make image` for arm64 (make test builds and runs the amd64 image).
.PHONY: package-check
package-check: package .tools/.qemu-arm64
	ETCD_AWS_ARM64_DIST=$(CURDIR)/$(DIST)/arm64 \
	  cargo test -p etcd-aws-tests --features arm64-artifacts --test arm64_artifacts
	ETCD_AWS_PACKAGE_DIST=$(CURDIR)/$(DIST) \
	  cargo test -p etcd-aws-cfn --test stand_in -- --ignored --test-threads=1 cargo_lambda_deploy
	IMAGE_ARCHS=arm64 $(MAKE) --no-print-directory image
	@# make test's clippy never sees the test behind the feature.
	cargo clippy -p etcd-aws-tests --features arm64-artifacts --all-targets -- -D warnings

# User-mode emulation of arm64: Debian's qemu-user-static, and the arm64 loader
# and libc (libc6-arm64-cross, under /usr/aarch64-linux-gnu) for the
# programs linked against glibc. Without recommends: binfmt-support would
# register handlers for the whole machine, and nothing here needs them.
.tools/.qemu-arm64:
	{ command -v qemu-aarch64-static >/dev/null && test -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1; } || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static libc6-arm64-cross; }
	mkdir -p .tools && touch $@

# The soak (docs/soak.md; not part of make test): faults drawn from a printed
# seed against a cluster of the harness under a checking workload. `soak
# --help` lists the knobs (duration, seed, nodes, faults, --containers), each
# also an environment variable. With --containers the nodes run the image.
SOAK_ARGS ?=

.PHONY: soak
soak: setup
	cargo build --quiet -p etcd-aws -p etcd-aws-lifecycle -p etcd-aws-backup
	cargo build --quiet -p etcd-aws-tests --bin soak
	@if [[ " $(SOAK_ARGS) " == *" --containers "* || "$${SOAK_CONTAINERS:-}" == true ]]; then \
	  IMAGE_PROFILE=ci-image IMAGE_ARCHS=amd64 $(MAKE) --no-print-directory image && \
	  ETCD_AWS_IMAGE=$(IMAGE) $${CARGO_TARGET_DIR:-target}/debug/soak $(SOAK_ARGS); \
	else \
	  $${CARGO_TARGET_DIR:-target}/debug/soak $(SOAK_ARGS); \
	fi

# The test node image (bootstrap/boot-image/build.sh): Debian bookworm by
# debootstrap with systemd, cloud-init (NoCloud) and the AWS CLI, its packages
# pinned in bootstrap/boot-image/packages.lock, imported as
# etcd-aws-boot:<content hash> and etcd-aws-boot:latest; skipped when that
# hash is already built. Needs root and Docker; installs debootstrap.
.PHONY: boot-image boot-check
boot-image:
	bootstrap/boot-image/build.sh

# Nodes that boot as EC2 instances boot (tests/tests/boot_node.rs and
# boot_scenarios.rs, ignored by cargo test): systemd as PID 1, cloud-init
# running the stack's user-data, the IMDSv2 stand-in at 169.254.169.254. make
# test runs BOOT_IN_MAKE_TEST only; this runs them all (docs/development.md).
BOOT_TEST_THREADS ?= 2
BOOT_IN_MAKE_TEST := a_stack_forms_from_its_user_data_and_a_terminated_node_is_replaced_by_one_booted_alike
boot-check: boot-image
	cargo test -p etcd-aws-tests --test boot_node --test boot_scenarios -- --ignored --test-threads=$(BOOT_TEST_THREADS)
