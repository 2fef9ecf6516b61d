# CloudFormation template, packaging and deployment of etcd-aws (included by the
# top-level Makefile; paths are relative to the repository root).
#
#   make template   dist/etcd.template.json and .yaml, checked by cfn-lint and checkov
#   make package    the two Lambda zips, the etcd-aws binary and the pinned etcd
#                   release archive in dist/, built for the chosen architectures
#   make deploy     package, upload to $(ETCD_AWS_ARTIFACT_BUCKET), create or update
#                   the stack and follow it to the end
#
# Every etcd-aws-cfn flag also reads an ETCD_AWS_* environment variable, so
#   make deploy ETCD_AWS_ARTIFACT_BUCKET=my-artifacts ETCD_AWS_ALARM_EMAIL=ops@example.com
# is all a deployment needs (plus AWS credentials in the environment).

# Scanner versions the template tests run; install them with the rest of `make setup`.
TEMPLATE_PY_REQUIREMENTS := cfn-lint==1.58.0 checkov==3.3.30

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
ETCD_RELEASES = https://github.com/etcd-io/etcd/releases/download/v$(ETCD_VERSION)
LAMBDA_ARCH_FLAG := $(if $(filter arm64,$(FUNCTION_ARCH)),--arm64,--x86-64)
NODE_ARCH_FLAG := $(if $(filter arm64,$(NODE_ARCH)),--arm64,--x86-64)

.PHONY: template template-setup package deploy

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

# cargo lambda (pip install cargo-lambda, or cargo install cargo-lambda) cross-compiles
# with zig; it also builds the node agent for Amazon Linux 2023's glibc.
package:
	mkdir -p $(DIST)
	cargo lambda build --release $(LAMBDA_ARCH_FLAG) --output-format zip -p etcd-aws-lifecycle
	cargo lambda build --release $(LAMBDA_ARCH_FLAG) --output-format zip -p etcd-aws-backup
	cp target/lambda/etcd-aws-lifecycle/bootstrap.zip $(DIST)/etcd-aws-lifecycle.zip
	cp target/lambda/etcd-aws-backup/bootstrap.zip $(DIST)/etcd-aws-backup.zip
	cargo lambda build --release $(NODE_ARCH_FLAG) -p etcd-aws
	cp target/lambda/etcd-aws/bootstrap $(DIST)/etcd-aws
	if grep -q "^$(ETCD_RELEASE_ARCH)  *$(ETCD_VERSION) " $(ETCD_ARCHIVE_LOCK); then \
	  bootstrap/image/etcd-archive.sh $(ETCD_RELEASE_ARCH) $(DIST); \
	else \
	  { test -f $(DIST)/$(ETCD_ARCHIVE) || curl -fsSL -o $(DIST)/$(ETCD_ARCHIVE) $(ETCD_RELEASES)/$(ETCD_ARCHIVE); } && \
	  curl -fsSL -o $(DIST)/etcd-SHA256SUMS $(ETCD_RELEASES)/SHA256SUMS && \
	  (cd $(DIST) && grep " $(ETCD_ARCHIVE)$$" etcd-SHA256SUMS | sha256sum --check --strict); \
	fi

deploy: package
	test -n "$(ETCD_AWS_ARTIFACT_BUCKET)" || { echo "set ETCD_AWS_ARTIFACT_BUCKET"; exit 1; }
	for file in etcd-aws-lifecycle.zip etcd-aws-backup.zip etcd-aws $(ETCD_ARCHIVE); do \
	  aws s3 cp --only-show-errors $(DIST)/$$file s3://$(ETCD_AWS_ARTIFACT_BUCKET)/$${ETCD_AWS_ARTIFACT_PREFIX:-$(ARTIFACT_PREFIX)}$$file || exit 1; \
	done
	ETCD_AWS_ETCD_SHA256=$${ETCD_AWS_ETCD_SHA256:-$$(sha256sum $(DIST)/$(ETCD_ARCHIVE) | cut -d' ' -f1)} \
	  $(CFN) --instance-type $${ETCD_AWS_INSTANCE_TYPE:-$(if $(filter arm64,$(NODE_ARCH)),t4g.medium,m7i.large)}
