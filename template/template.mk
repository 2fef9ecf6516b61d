# CloudFormation template, packaging and deployment of etcd-aws (included by the
# top-level Makefile; paths are relative to the repository root).
#
#   make template   dist/etcd.template.json and .yaml, checked by cfn-lint and checkov
#   make package    the two Lambda zips, the etcd-aws binary and the pinned etcd
#                   release archive in dist/<arch>/, for arm64 and x86_64
#                   (PACKAGE_ARCHS), with the pinned cargo-lambda and zig
#   make package-check  package, then run the arm64 artifacts under emulation,
#                   `cargo lambda deploy` them into a stack in moto, and build
#                   the image for both architectures (not part of make test)
#   make deploy     package, upload to $(ETCD_AWS_ARTIFACT_BUCKET) (versioned) with the
#                   checksums and object versions that pin them, create or update
#                   the stack and follow it to the end
#
# Every etcd-aws-cfn flag also reads an ETCD_AWS_* environment variable, so
#   make deploy ETCD_AWS_ARTIFACT_BUCKET=my-artifacts ETCD_AWS_ALARM_EMAIL=ops@example.com ETCD_AWS_OPERATOR_ROLE_ARNS=arn:aws:iam::111122223333:role/etcd-operators
# is all a deployment needs (plus AWS credentials in the environment).

# Scanner versions the template tests run; install them with the rest of `make setup`.
TEMPLATE_PY_REQUIREMENTS := cfn-lint==1.58.0 checkov==3.3.30

# The template tests also check the user-data the template carries: shellcheck on
# the script as CloudFormation renders it and `systemd-analyze verify` on the units
# it writes (template/generator/tests/rendered_user_data.rs). Both come from
# Debian's packages, installed only when missing: a slim Debian image has neither.
TEMPLATE_CHECK_TOOLS := .tools/.template-check-tools

TEMPLATE_VENV ?= .venv
DIST ?= dist
CFN = $(CFN_ENV) cargo run --quiet --release -p etcd-aws-cfn --
# Instances: arm64 for Graviton types (the default t4g.medium), x86_64 otherwise.
NODE_ARCH ?= arm64
# Functions: arm64 (default) or x86_64.
FUNCTION_ARCH ?= arm64
# The release the tests run, whose archive this project builds from the pinned
# Debian packages (template/generator/etcd-archives.lock); another version is
# downloaded from etcd's releases and checked against their SHA256SUMS.
ETCD_ARCHIVE_LOCK := template/generator/etcd-archives.lock
ETCD_VERSION ?= $(LOCAL_ETCD)
# Artifacts of different builds live side by side, so a stack update that changes the
# prefix replaces the function code and the nodes' binaries together.
ARTIFACT_PREFIX ?= etcd-aws/$(shell git rev-parse --short HEAD 2>/dev/null || echo dev)/

# Given to etcd-aws-cfn only (an environment value wins): exported globally they
# would leak into every other recipe, `cargo test` included.
CFN_ENV := ETCD_AWS_ETCD_VERSION=$${ETCD_AWS_ETCD_VERSION:-$(ETCD_VERSION)} \
  ETCD_AWS_FUNCTION_ARCH=$${ETCD_AWS_FUNCTION_ARCH:-$(FUNCTION_ARCH)} \
  ETCD_AWS_ARTIFACT_PREFIX=$${ETCD_AWS_ARTIFACT_PREFIX:-$(ARTIFACT_PREFIX)}

ETCD_RELEASE_ARCH := $(if $(filter arm64,$(NODE_ARCH)),arm64,amd64)
ETCD_ARCHIVE = etcd-v$(ETCD_VERSION)-linux-$(ETCD_RELEASE_ARCH).tar.gz

# The packaging tools, pinned: cargo-lambda drives the cross builds and zig
# (its ziglang package) compiles and links them for Amazon Linux 2023's glibc.
CARGO_LAMBDA_VERSION := 1.9.2
ZIGLANG_VERSION := 0.17.1
PACKAGE_PY_REQUIREMENTS := cargo-lambda==$(CARGO_LAMBDA_VERSION) ziglang==$(ZIGLANG_VERSION)
# The architectures `make package` builds (arm64 first: the stack's default).
PACKAGE_ARCHS ?= arm64 x86_64

.PHONY: template template-setup package package-setup package-check deploy

template-setup:
	test -x $(TEMPLATE_VENV)/bin/python || python3 -m venv $(TEMPLATE_VENV)
	$(TEMPLATE_VENV)/bin/pip install --quiet --disable-pip-version-check $(TEMPLATE_PY_REQUIREMENTS)

template:
	mkdir -p $(DIST)
	$(CFN) --dry-run --format json > $(DIST)/etcd.template.json
	$(CFN) --dry-run --format yaml > $(DIST)/etcd.template.yaml
	$(TEMPLATE_VENV)/bin/cfn-lint $(DIST)/etcd.template.json $(DIST)/etcd.template.yaml
	$(TEMPLATE_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
	  -f $(DIST)/etcd.template.json -f $(DIST)/etcd.template.yaml

$(TEMPLATE_CHECK_TOOLS):
	command -v shellcheck >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck; }
	command -v systemd-analyze >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd; }
	mkdir -p .tools && touch $@

package-setup: $(TEMPLATE_VENV)/.package-installed

$(TEMPLATE_VENV)/.package-installed: template/template.mk
	test -x $(TEMPLATE_VENV)/bin/python || python3 -m venv $(TEMPLATE_VENV)
	$(TEMPLATE_VENV)/bin/pip install --quiet --disable-pip-version-check $(PACKAGE_PY_REQUIREMENTS)
	touch $@

# template/package.sh builds, checks and lays out dist/<arch>/ (see the script).
package: setup package-setup
	DIST=$(DIST) ETCD_VERSION=$(ETCD_VERSION) template/package.sh $(PACKAGE_ARCHS)

# A deployment needs only the functions' and the nodes' architectures.
deploy: PACKAGE_ARCHS = $(sort $(FUNCTION_ARCH) $(NODE_ARCH))
# The artifacts go under a prefix named for what they hold (unless
# ETCD_AWS_ARTIFACT_PREFIX names one): CloudFormation replaces a function's code
# or the nodes' binaries only when the stack names other objects, so a prefix
# named for the commit would leave a rebuilt tree's code, or code a `cargo
# lambda deploy` pushed, in place; a build that holds the same binaries keeps
# its prefix and changes nothing.
# etcd-aws-cfn uploads them itself (--artifacts-dir): it pins what it read, the
# agent's and etcd's SHA-256 for the nodes to check and the zips' object versions
# for the functions to run.
deploy: package
	test -n "$(ETCD_AWS_ARTIFACT_BUCKET)" || { echo "set ETCD_AWS_ARTIFACT_BUCKET"; exit 1; }
	prefix=$${ETCD_AWS_ARTIFACT_PREFIX:-etcd-aws/$$(cat $(DIST)/$(FUNCTION_ARCH)/lambda/etcd-aws-lifecycle/bootstrap \
	    $(DIST)/$(FUNCTION_ARCH)/lambda/etcd-aws-backup/bootstrap $(DIST)/$(NODE_ARCH)/etcd-aws \
	    $(DIST)/$(NODE_ARCH)/$(ETCD_ARCHIVE) | sha256sum | cut -c1-16)/} && \
	ETCD_AWS_ARTIFACT_PREFIX=$$prefix ETCD_AWS_ARTIFACTS_DIR=$(DIST) \
	  $(CFN) --instance-type $${ETCD_AWS_INSTANCE_TYPE:-$(if $(filter arm64,$(NODE_ARCH)),t4g.medium,m7i.large)}
