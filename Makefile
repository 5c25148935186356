# Brine - make targets for the deploy node, the testbed and the tests.
# Run from the repository root, as root for anything touching the testbed.

SHELL := /bin/bash
CLUSTER ?= demo
# The Kubernetes release line of the bundle (salt/bundle/manifests/<RELEASE>.yaml).
RELEASE ?= 1.37
# Upstream is unreachable here: the demo and tests build the bundle from a local
# mirror assembled from what this machine can get (tests/mirror). Its Kubernetes is
# KUBERNETES=built: real binaries and images from `make k8s-artifacts` (the demo, the
# end-to-end lanes), or KUBERNETES=standins: tests/standins (the lanes that stop before
# Kubernetes runs; no Go build needed).
KUBERNETES ?= built
K8S_CACHE ?= /var/cache/brine/k8s
ifeq ($(KUBERNETES),standins)
MIRROR ?= /var/cache/brine/mirror/$(RELEASE)-standins
# The testbed's deploy node sees this folder as /srv/brine/incoming.
BUNDLE ?= /var/cache/brine/bundles/brine-$(RELEASE)-amd64-standins.tar
MIRROR_KUBERNETES :=
MIRROR_NEEDS :=
else
MIRROR ?= /var/cache/brine/mirror/$(RELEASE)
BUNDLE ?= /var/cache/brine/bundles/brine-$(RELEASE)-amd64.tar
MIRROR_KUBERNETES := --kubernetes-from $(K8S_CACHE)
MIRROR_NEEDS := k8s-release
endif
VENV := .venv
PY := $(VENV)/bin/python
SALT_RUN := $(VENV)/bin/salt-run
# Debian packages the deploy node and the testbed need (gcc, libc6-dev, skopeo: the test
# mirror builds static stand-ins and OCI images, and checks them with skopeo).
DEBIAN_PACKAGES := python3 python3-venv debootstrap systemd-container nftables \
	openssh-client iproute2 ca-certificates gcc libc6-dev skopeo
PYTEST_ARGS ?=
# The Kubernetes versions `make k8s-artifacts` builds from Go modules (tests/k8s/build.sh);
# the pair Day two's upgrade goes between. v1.20.2 (the kubeadm v1beta2 lane) comes from
# Debian's source package.
K8S_VERSIONS ?= v1.36.3 v1.37.2
# What the bundle of each release line needs built (k8s-release).
K8S_PARTS_1.37 := K8S_VERSIONS=v1.37.2 tests/k8s/build.sh k8s crictl cni coredns
K8S_PARTS_1.36 := K8S_VERSIONS=v1.36.3 tests/k8s/build.sh k8s crictl cni coredns
K8S_PARTS_1.20 := tests/k8s/build.sh debian crictl cni

.PHONY: setup debian-packages venv salt-config test test-fast docs lint demo deploy mirror bundle \
	testbed-up testbed-down testbed-status bench clean test-upgrade k8s-artifacts k8s-release k8s-background

## setup: Debian packages, the pinned venv, Salt's config for this checkout
setup: debian-packages venv salt-config

debian-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages: $$missing (install them as root)"; exit 1; fi; \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock
	@test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	@touch $@

# Salt reads relative paths against its working directory; the absolute paths
# of this checkout go in a git-ignored drop-in, rewritten when the checkout moves.
salt-config:
	@case "$(CURDIR)" in *[[:space:]\'\"]*) echo "the repository path must have no spaces or quotes: $(CURDIR)"; exit 1;; esac
	@mkdir -p etc/salt/master.d .brine/salt/var/cache/salt/master/proc
	@printf '%s\n' \
		"# Written by 'make salt-config' for this checkout; do not edit." \
		"user: $$(id -un)" \
		"root_dir: $(CURDIR)/.brine/salt" \
		"brine_state_dir: $(CURDIR)/.brine" \
		"brine_repo_root: $(CURDIR)" \
		"module_dirs: [$(CURDIR)]" \
		"pillar_dirs: [$(CURDIR)/_pillar]" \
		"file_roots: {base: [$(CURDIR)/salt, $(CURDIR)/.brine/fileserver]}" \
		"pillar_roots: {base: [$(CURDIR)/pillar]}" \
		"ssh_log_file: $(CURDIR)/.brine/salt/var/log/salt/ssh" \
		> etc/salt/master.d/paths.conf.new
	@cmp -s etc/salt/master.d/paths.conf.new etc/salt/master.d/paths.conf \
		&& rm etc/salt/master.d/paths.conf.new \
		|| mv etc/salt/master.d/paths.conf.new etc/salt/master.d/paths.conf

## test: every lane - unit, render, the testbed integration and end-to-end lanes - but
## the upgrade lane (make test-upgrade: two release lines built, ~25 min more)
test: setup lint k8s-background
	$(PY) -m pytest -m "not upgrade" $(PYTEST_ARGS)

## test-upgrade: cluster.upgrade v1.36.3 -> v1.37.2 on a 3+2 testbed cluster, a Service probed throughout
test-upgrade: setup
	$(PY) -m pytest -m upgrade $(PYTEST_ARGS)

# What the real lanes (tests/e2e, run last) need built, started in the background at nice
# 19 so it overlaps the lanes before them, which mostly wait on SSH; the lanes' own
# `make bundle` waits for it (tests/k8s/build.sh holds a lock) and finds it done.
K8S_BACKGROUND_LOG := /var/cache/brine/k8s/background.log
k8s-background:
	@mkdir -p /var/cache/brine/k8s
	@echo "building Kubernetes for the real lanes in the background (log: $(K8S_BACKGROUND_LOG))"
	@BUILD_NICE=19 BRINE_K8S_CACHE=$(K8S_CACHE) nohup sh -c '$(K8S_PARTS_1.37) debian && \
		K8S_VERSIONS=v1.36.3 K8S_ONLY=kubeadm tests/k8s/build.sh k8s' >$(K8S_BACKGROUND_LOG) 2>&1 </dev/null &

## test-fast: the lanes that need no testbed
test-fast: setup
	$(PY) -m pytest -m "not testbed and not slow" $(PYTEST_ARGS)

## docs: docs/pillar.md from the pillar schema
docs: venv
	$(PY) -c "import sys; sys.path.insert(0, '_utils'); import brine_pillar; print(brine_pillar.reference_markdown(), end='')" > docs/pillar.md

lint: venv
	$(VENV)/bin/ruff check .

## demo: the bundle, a testbed for CLUSTER (default demo) and cluster.deploy on it
demo: setup bundle testbed-up deploy

## mirror: the local stand-in for upstream (Debian packages, wheels, locally built images and binaries)
mirror: setup $(MIRROR_NEEDS)
	$(PY) -m tests.mirror build --manifest salt/bundle/manifests/$(RELEASE).yaml --out $(MIRROR) $(MIRROR_KUBERNETES)

## bundle: the offline bundle from the mirror; unpinned sums taken from the mirror's published ones
bundle: mirror salt-config
	$(SALT_RUN) bundle.build release='"$(RELEASE)"' source=$(MIRROR) pin=True output=$(BUNDLE)

deploy: salt-config
	$(SALT_RUN) state.orchestrate cluster.deploy pillar='{"cluster": "$(CLUSTER)"}'

# A testbed that comes up anew is a set of reinstalled machines: their old keys
# are forgotten and the keys the testbed made are trusted.
testbed-up: setup
	$(PY) -m tests.testbed up $(CLUSTER)
	$(SALT_RUN) cluster.trust $(CLUSTER) forget='*' >/dev/null
	$(SALT_RUN) cluster.trust $(CLUSTER) known_hosts=/var/lib/brine-testbed/$(CLUSTER)/known_hosts

testbed-down: venv
	$(PY) -m tests.testbed down $(CLUSTER)

testbed-status: venv
	$(PY) -m tests.testbed status $(CLUSTER)

## k8s-artifacts: kubeadm, kubelet, kubectl, the control plane and kube-proxy of each of
## K8S_VERSIONS, crictl, the CNI plugins and CoreDNS, built from Go modules into
## /var/cache/brine/k8s (outside the work tree; a warm run rebuilds nothing)
k8s-artifacts:
	K8S_VERSIONS="$(K8S_VERSIONS)" BRINE_K8S_CACHE=$(K8S_CACHE) tests/k8s/build.sh

# Only what the bundle of RELEASE needs.
k8s-release:
	BRINE_K8S_CACHE=$(K8S_CACHE) $(K8S_PARTS_$(RELEASE))

bench: setup
	$(PY) tests/bench/testbed_bench.py

clean: testbed-down
	rm -rf .brine/salt
