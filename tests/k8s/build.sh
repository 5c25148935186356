#!/usr/bin/env bash
# Kubernetes and its companions built from Go modules with the machine's Go toolchain and
# the Go module proxy: no release binary is downloaded, nothing is written in the work tree.
#
#   tests/k8s/build.sh [k8s] [crictl] [cni] [coredns] [debian]   (no argument: all five)
#
# Kubernetes is built the known way: a small module of ours (generated under the cache)
# requires k8s.io/kubernetes vX.Y.Z and replaces every k8s.io/<staging> module that
# k8s.io/kubernetes's own go.mod maps to ./staging/src/... by its published v0.Y.Z.
# crictl, the CNI plugins and CoreDNS are built as their own main modules (go.mod and
# go.sum as released) from a copy of the module's source.
# The old-API lane (part "debian"): Kubernetes from Debian bookworm's `kubernetes` source
# package (the upstream tree with vendor/, Debian's patches applied), built the way its
# debian/rules does (GOPATH mode, `make WHAT=cmd/...`) with Debian's Go 1.19.
#
# Environment (defaults in brackets):
#   K8S_VERSIONS        ["v1.36.3 v1.37.2"]
#   CRICTL_VERSION      [v1.37.0]   sigs.k8s.io/cri-tools
#   CNI_PLUGINS_VERSION [v1.10.0]   github.com/containernetworking/plugins
#   COREDNS_VERSIONS    [the CoreDNSVersion of each K8S_VERSIONS' kubeadm]
#   DEBIAN_K8S_VERSION  [v1.20.2]   the upstream version in bookworm's source package
#   BRINE_K8S_CACHE     [/var/cache/brine/k8s]
#   GO                  [/usr/local/go/bin/go]
#   K8S_ONLY            [all seven]  just these Kubernetes binaries (e.g. "kubeadm")
#   BUILD_P             [2]   go build -p;   BUILD_NICE [10]   nice level of the builds
#
# Results:  $BRINE_K8S_CACHE/<k8s version>/bin/<name>
#           $BRINE_K8S_CACHE/{crictl,cni-plugins,coredns}/<version>/bin/<name>
# each bin/ with its SHA256SUMS, and beside it RECIPE: the sha256 and the text of the
# recipe that built it. A result whose recipe hash matches and whose sums check is kept,
# so a warm run builds nothing. Go's build cache ($BRINE_K8S_CACHE/gocache) makes a
# rebuild after a recipe change incremental. Timings go to $BRINE_K8S_CACHE/build.log.
set -euo pipefail

# Bump when the way things are built changes in a way the recipe texts below do not show.
RECIPE_REV=1

CACHE=${BRINE_K8S_CACHE:-/var/cache/brine/k8s}
GO=${GO:-/usr/local/go/bin/go}
K8S_VERSIONS=${K8S_VERSIONS:-v1.36.3 v1.37.2}
CRICTL_VERSION=${CRICTL_VERSION:-v1.37.0}
CNI_PLUGINS_VERSION=${CNI_PLUGINS_VERSION:-v1.10.0}
COREDNS_VERSIONS=${COREDNS_VERSIONS:-}
DEBIAN_K8S_VERSION=${DEBIAN_K8S_VERSION:-v1.20.2}
BUILD_P=${BUILD_P:-2}
BUILD_NICE=${BUILD_NICE:-10}

K8S_BINARIES=(kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
# The CNI plugins a Linux node can use (upstream's build_linux.sh: meta, main, ipam less windows).
CNI_PLUGINS=(bandwidth firewall portmap sbr tuning vrf
	bridge dummy host-device ipvlan loopback macvlan ptp tap vlan
	dhcp host-local static)

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOOS=linux GOARCH=amd64
export GOCACHE="$CACHE/gocache" GOFLAGS=-buildvcs=false

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$CACHE/build.log" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
sha() { sha256sum | cut -d' ' -f1; }
gobuild() { nice -n "$BUILD_NICE" "$GO" build -p "$BUILD_P" -trimpath "$@"; }

# A result is fresh when its RECIPE carries the recipe's hash and its sums check.
fresh() { # dir recipe
	[ -f "$1/RECIPE" ] && [ -f "$1/bin/SHA256SUMS" ] \
		&& [ "$(head -n1 "$1/RECIPE")" = "sha256:$(printf '%s\n' "$2" | sha)" ] \
		&& (cd "$1/bin" && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1)
}

# Sums, then bin.new replaces bin, then RECIPE: a run stopped half-way leaves no fresh result.
install_result() { # dir recipe
	(cd "$1/bin.new" && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%P\n' | sort \
		| xargs sha256sum >SHA256SUMS)
	rm -f "$1/RECIPE"
	rm -rf "$1/bin"
	mv "$1/bin.new" "$1/bin"
	{ printf 'sha256:%s\n' "$(printf '%s\n' "$2" | sha)"; printf '%s\n' "$2"; } >"$1/RECIPE.new"
	mv "$1/RECIPE.new" "$1/RECIPE"
	log "installed $1/bin: $(du -sh "$1/bin" | cut -f1)"
}

# The first line the command prints must equal (or, with ~, contain) the expected text.
expect_output() { # expected command...
	local want=$1 got
	shift
	got=$("$@" 2>&1 | head -n1) || true
	case $want in
	"~"*) [[ $got == *"${want#\~}"* ]] ;;
	*) [ "$got" = "$want" ] ;;
	esac || die "$(basename "$1") ${*:2}: printed '$got', expected '${want#\~}'"
	log "  $(basename "$1"): $(stat -c %s "$1") bytes, '$got'"
}

# Field of `go mod download -json module@version` (Dir, GoMod, Info).
mod_field() { # module@version field
	local json
	json=$("$GO" mod download -json "$1") || die "go mod download $1: $json"
	sed -nE "s/^[[:space:]]*\"$2\": \"(.*)\",?\$/\1/p" <<<"$json"
}

go_id() { printf 'go %s %s/%s CGO_ENABLED=%s' "$("$GO" env GOVERSION)" "$GOOS" "$GOARCH" "$CGO_ENABLED"; }

k8s_ldflags() { # version build-date
	local minor=${1#v1.} kv key val flags="-s -w"
	minor=${minor%%.*}
	for kv in "gitVersion=$1" gitMajor=1 "gitMinor=$minor" gitTreeState=clean "buildDate=$2"; do
		key=${kv%%=*} val=${kv#*=}
		flags+=" -X k8s.io/component-base/version.$key=$val -X k8s.io/client-go/pkg/version.$key=$val"
	done
	printf '%s' "$flags"
}

# Each built Kubernetes binary reports the version it was stamped with.
check_k8s_binaries() { # dir version kubectl-expected names...
	local dir=$1 v=$2 kubectl=$3 name
	shift 3
	for name in "$@"; do
		case $name in
		kubeadm) expect_output "$v" "$dir/kubeadm" version -o short ;;
		kubectl) expect_output "$kubectl" "$dir/kubectl" version --client ;;
		*) expect_output "Kubernetes $v" "$dir/$name" --version ;;
		esac
	done
}

k8s_recipe() { # version binaries...
	local v=$1
	shift
	printf '%s\n' "rev $RECIPE_REV" "module k8s.io/kubernetes $v, k8s.io/<staging> => v0.${v#v1.}" \
		"$(go_id)" "go build -trimpath -ldflags '$(k8s_ldflags "$v" '<release time of the module>')'" \
		"binaries $*"
}

# The binaries of K8S_BINARIES in $@ or in the recipe file $1 ("binaries ..." line), in K8S_BINARIES' order.
canonical() { local n; for n in "${K8S_BINARIES[@]}"; do [[ " $* " == *" $n "* ]] && printf '%s ' "$n"; done; }

build_k8s() { # version
	local v=$1 out="$CACHE/$1" staging_v="v0.${1#v1.}" recipe info gomod date start t name have=() want=() build=()
	[[ $v =~ ^v1\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]] || die "not a Kubernetes version: $v"
	# K8S_ONLY (e.g. "kubeadm") builds just those; a result holding more is kept as it is.
	read -ra want <<<"$(canonical ${K8S_ONLY:-${K8S_BINARIES[*]}})"
	[ ${#want[@]} -gt 0 ] || die "K8S_ONLY='$K8S_ONLY' names none of ${K8S_BINARIES[*]}"
	if [ -f "$out/RECIPE" ]; then
		read -ra have <<<"$(canonical $(sed -n 's/^binaries //p' "$out/RECIPE"))"
		if [ ${#have[@]} -gt 0 ] && fresh "$out" "$(k8s_recipe "$v" "${have[@]}")"; then
			if [ -z "$(canonical "${want[@]}" | tr ' ' '\n' | grep -vxF -f <(printf '%s\n' "${have[@]}") | grep .)" ]; then
				log "kubernetes $v: up to date ($out/bin: ${have[*]})"
				return
			fi
		else
			have=()
		fi
	fi
	read -ra build <<<"$(canonical "${want[@]}" "${have[@]}")"
	recipe=$(k8s_recipe "$v" "${build[@]}")

	start=$(now)
	log "kubernetes $v: building into $out"
	info=$(mod_field "k8s.io/kubernetes@$v" Info)
	gomod=$(mod_field "k8s.io/kubernetes@$v" GoMod)
	# buildDate: the release time the module proxy gives, so a rebuild gives the same bytes.
	date=$(sed -nE 's/.*"Time":"([^"]+)".*/\1/p' "$info")
	date=$(date -u -d "$date" +%Y-%m-%dT%H:%M:%SZ)

	mkdir -p "$out/mod"
	rm -rf "$out/bin.new"
	mkdir -p "$out/bin.new"
	{
		printf '// Generated by tests/k8s/build.sh: builds k8s.io/kubernetes %s as a dependency.\n' "$v"
		printf 'module brine.local/k8s-build\n\n'
		grep -E '^go [0-9]' "$gomod"
		grep -E '^godebug ' "$gomod" || true
		printf '\nrequire k8s.io/kubernetes %s\n\ntool (\n' "$v"
		printf '\tk8s.io/kubernetes/cmd/%s\n' "${K8S_BINARIES[@]}"
		printf ')\n\nreplace (\n'
		sed -nE 's,^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/.*,\2,p' "$gomod" \
			| sort -u | while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_v"; done
		printf ')\n'
	} >"$out/mod/go.mod.new"
	grep -q '=> k8s.io/api ' "$out/mod/go.mod.new" || die "no k8s.io/* => ./staging/ replace found in $gomod"
	# The module is resolved again only when the go.mod we generate changes.
	if ! cmp -s "$out/mod/go.mod.new" "$out/mod/go.mod.in" || [ ! -f "$out/mod/go.sum" ]; then
		cp "$out/mod/go.mod.new" "$out/mod/go.mod"
		rm -f "$out/mod/go.sum"
		t=$(now)
		(cd "$out/mod" && "$GO" mod tidy) || die "kubernetes $v: go mod tidy failed"
		mv "$out/mod/go.mod.new" "$out/mod/go.mod.in"
		log "kubernetes $v: module resolved in $(since "$t") s ($(grep -c . "$out/mod/go.sum") go.sum lines)"
	fi
	rm -f "$out/mod/go.mod.new"

	for name in "${build[@]}"; do
		t=$(now)
		(cd "$out/mod" && gobuild -ldflags "$(k8s_ldflags "$v" "$date")" -o "$out/bin.new/$name" \
			"k8s.io/kubernetes/cmd/$name") || die "kubernetes $v: go build $name failed"
		log "kubernetes $v: $name built in $(since "$t") s"
	done
	check_k8s_binaries "$out/bin.new" "$v" "Client Version: $v" "${build[@]}"
	install_result "$out" "$recipe"
	log "kubernetes $v: done in $(since "$start") s"
}

build_k8s_and_pause() { # version
	build_k8s "$1"
	build_pause "$1" "$(mod_field "k8s.io/kubernetes@$1" Dir)"
}

# A writable copy of a module's source as released, to build it as the main module.
module_source() { # module version kind
	local dir="$CACHE/src/$3@$2" src
	if [ ! -f "$dir/go.mod" ]; then
		src=$(mod_field "$1@$2" Dir)
		[ -d "$src" ] || die "$1@$2: no source directory"
		rm -rf "$dir.new"
		mkdir -p "$CACHE/src"
		cp -r "$src" "$dir.new"
		chmod -R u+w "$dir.new"
		mv "$dir.new" "$dir"
	fi
	printf '%s' "$dir"
}

# kind module version ldflags "check" packages...: check is "name|expected|args" lines.
build_module() {
	local kind=$1 module=$2 v=$3 ldflags=$4 checks=$5 out="$CACHE/$1/$3" recipe src start name want args
	shift 5
	recipe=$(printf '%s\n' "rev $RECIPE_REV" "module $module $v as the main module" "$(go_id)" \
		"go build -trimpath -ldflags '$ldflags' $*")
	if fresh "$out" "$recipe"; then log "$kind $v: up to date ($out/bin)"; return; fi
	start=$(now)
	log "$kind $v: building into $out"
	src=$(module_source "$module" "$v" "$kind")
	rm -rf "$out/bin.new"
	mkdir -p "$out/bin.new"
	(cd "$src" && gobuild -ldflags "$ldflags" -o "$out/bin.new/" "$@") || die "$kind $v: go build failed"
	log "$kind $v: built in $(since "$start") s"
	while IFS='|' read -r name want args; do
		[ -n "$name" ] || continue
		# shellcheck disable=SC2086 # args are words
		expect_output "$want" "$out/bin.new/$name" $args
	done <<<"$checks"
	install_result "$out" "$recipe"
}

build_crictl() {
	build_module crictl sigs.k8s.io/cri-tools "$CRICTL_VERSION" \
		"-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
		"crictl|crictl version $CRICTL_VERSION|--version" ./cmd/crictl
}

build_cni() {
	local v=$CNI_PLUGINS_VERSION p checks="" pkgs=() d src
	src=$(mod_field "github.com/containernetworking/plugins@$v" Dir)
	for p in "${CNI_PLUGINS[@]}"; do
		for d in meta main ipam; do
			[ -d "$src/plugins/$d/$p" ] || continue
			pkgs+=("./plugins/$d/$p")
		done
		# A plugin called with no CNI_COMMAND prints "CNI <name> plugin <version>".
		checks+="$p|~CNI $p plugin $v|"$'\n'
	done
	[ "${#pkgs[@]}" = "${#CNI_PLUGINS[@]}" ] || die "cni-plugins $v: not every plugin of ${CNI_PLUGINS[*]} found"
	build_module cni-plugins github.com/containernetworking/plugins "$v" \
		"-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$v" \
		"$checks" "${pkgs[@]}"
}

# The CoreDNS versions the kubeadm of each Kubernetes version expects.
coredns_versions() {
	local v dir
	for v in $K8S_VERSIONS; do
		dir=$(mod_field "k8s.io/kubernetes@$v" Dir)
		sed -nE 's/^[[:space:]]*CoreDNSVersion[[:space:]]*=[[:space:]]*"(v[^"]+)".*/\1/p' \
			"$dir/cmd/kubeadm/app/constants/constants.go"
	done | sort -uV
}

build_coredns() {
	local v
	for v in ${COREDNS_VERSIONS:-$(coredns_versions)}; do
		build_module coredns github.com/coredns/coredns "$v" \
			"-s -w -X github.com/coredns/coredns/coremain.GitCommit=$v" \
			"coredns|CoreDNS-${v#v}|-version" .
	done
}

# pause, compiled from a Kubernetes tree's build/pause/linux/pause.c the way its Makefile
# does (gcc -Os -Wall -Werror -static -DVERSION=v<tag>), at the PauseVersion that tree's
# kubeadm expects: $CACHE/pause/<tag>/bin/pause.
build_pause() { # kubernetes-version tree
	local tree=$2 tag out recipe src
	# constants.go; constants_unix.go up to 1.2x
	tag=$(sed -nE 's/^[[:space:]]*PauseVersion[[:space:]]*=[[:space:]]*"([^"]+)".*/\1/p' \
		"$tree/cmd/kubeadm/app/constants/constants.go" "$tree/cmd/kubeadm/app/constants/constants_unix.go" 2>/dev/null | head -n1)
	[ -n "$tag" ] || die "pause: no PauseVersion in $tree/cmd/kubeadm/app/constants/constants{,_unix}.go"
	out="$CACHE/pause/$tag"
	src="$tree/build/pause/linux/pause.c"
	[ -f "$src" ] || src="$tree/build/pause/pause.c"
	[ -f "$src" ] || die "pause $tag: no build/pause/linux/pause.c in $tree"
	recipe=$(printf '%s\n' "rev $RECIPE_REV" "build/pause/linux/pause.c sha256:$(sha <"$src")" \
		"$(gcc --version | head -n1)" "gcc -Os -Wall -Werror -static -DVERSION=v$tag -s")
	if fresh "$out" "$recipe"; then log "pause $tag: up to date ($out/bin)"; return; fi
	rm -rf "$out/bin.new"
	mkdir -p "$out/bin.new"
	gcc -Os -Wall -Werror -static -DVERSION="v$tag" -s -o "$out/bin.new/pause" "$src" \
		|| die "pause $tag: gcc failed"
	expect_output "pause.c v$tag" "$out/bin.new/pause" -v
	install_result "$out" "$recipe"
}

# Kubernetes from Debian's source package, for the kubeadm v1beta2 lane.
build_k8s_debian() {
	local v=$DEBIAN_K8S_VERSION out="$CACHE/$DEBIAN_K8S_VERSION" recipe apt_opts dsc tree start t name
	local go119=/usr/lib/go-1.19/bin reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
	recipe=$(printf '%s\n' "rev $RECIPE_REV" "debian bookworm source package kubernetes (upstream $v)" \
		"GOPATH mode, GO111MODULE=off CGO_ENABLED=0, golang-1.19, vendored modern-go/reflect2 replaced by Debian's 1.0.2" \
		"make WHAT='${K8S_BINARIES[*]/#/cmd/}' KUBE_GIT_VERSION=$v GOLDFLAGS='-s -w -buildid='")
	if fresh "$out" "$recipe"; then
		log "kubernetes $v (debian): up to date ($out/bin)"
		build_pause "$v" "$out/src/kubernetes"
		return
	fi
	start=$(now)
	log "kubernetes $v (debian): building into $out"
	# Debian's Go 1.19 and reflect2 1.0.2: the vendored reflect2 1.0.1 makes kubeadm panic in
	# the kubelet-start phase when built with Go >= 1.18 (nil pointer in UnsafeMapType.Key).
	if [ ! -x "$go119/go" ] || [ ! -f "$reflect2/go.mod" ] || ! command -v rsync >/dev/null || ! command -v dpkg-source >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			golang-1.19-go golang-github-modern-go-reflect2-dev rsync dpkg-dev >/dev/null \
			|| die "apt-get install golang-1.19-go golang-github-modern-go-reflect2-dev rsync dpkg-dev failed"
	fi
	# The source package through a private apt state: the machine's sources stay as they are.
	mkdir -p "$out/apt/lists/partial" "$out/pkg"
	printf 'deb-src http://deb.debian.org/debian bookworm main\n' >"$out/apt/sources.list"
	apt_opts=(-o "Dir::Etc::SourceList=$out/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$out/apt/lists")
	dsc=$(find "$out/pkg" -maxdepth 1 -name 'kubernetes_*.dsc' | head -n1)
	if [ -z "$dsc" ]; then
		apt-get "${apt_opts[@]}" -qq update || die "apt-get update (deb-src bookworm) failed"
		(cd "$out/pkg" && apt-get "${apt_opts[@]}" -qq source --download-only kubernetes) \
			|| die "apt-get source kubernetes failed"
		dsc=$(find "$out/pkg" -maxdepth 1 -name 'kubernetes_*.dsc' | head -n1)
	fi
	tree="$out/src/kubernetes"
	if [ ! -f "$tree/.brine-prepared" ]; then
		rm -rf "$out/src"
		mkdir -p "$out/src"
		dpkg-source --no-check -x "$dsc" "$tree" >/dev/null || die "dpkg-source -x $dsc failed"
		rm -rf "$tree/vendor/github.com/modern-go/reflect2"
		cp -r "$reflect2" "$tree/vendor/github.com/modern-go/reflect2"
		mkdir -p "$tree/.go/src/k8s.io"
		ln -sfn ../../.. "$tree/.go/src/k8s.io/kubernetes"
		touch "$tree/.brine-prepared"
	fi
	t=$(now)
	# kubelet and kube-proxy are not static upstream; here every binary is (CGO_ENABLED=0).
	(cd "$tree" && PATH="$go119:$PATH" GOPATH="$tree/.go" GO111MODULE=off CGO_ENABLED=0 \
		GOCACHE="$CACHE/gocache-go1.19" GOFLAGS= GOTOOLCHAIN= HOME="$out" \
		KUBE_STATIC_OVERRIDES="kubelet kube-proxy" KUBE_BUILD_PLATFORMS=linux/amd64 \
		KUBE_GIT_VERSION="$v" KUBE_GIT_TREE_STATE=clean GOLDFLAGS='-s -w -buildid=' \
		nice -n "$BUILD_NICE" make WHAT="${K8S_BINARIES[*]/#/cmd/}" >>"$CACHE/build.log" 2>&1) \
		|| die "kubernetes $v (debian): make failed (see $CACHE/build.log)"
	log "kubernetes $v (debian): make built ${K8S_BINARIES[*]} in $(since "$t") s"
	rm -rf "$out/bin.new"
	mkdir -p "$out/bin.new"
	for name in "${K8S_BINARIES[@]}"; do
		cp "$tree/_output/local/bin/linux/amd64/$name" "$out/bin.new/$name"
	done
	# kubectl 1.20 prints a Go struct: version.Info{..., GitVersion:"v1.20.2", ...}
	check_k8s_binaries "$out/bin.new" "$v" "~GitVersion:\"$v\"" "${K8S_BINARIES[@]}"
	install_result "$out" "$recipe"
	log "kubernetes $v (debian): done in $(since "$start") s"
	build_pause "$v" "$tree"
}

main() {
	local what=("$@") w v start
	[ ${#what[@]} -gt 0 ] || what=(k8s crictl cni coredns debian)
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock 9
	start=$(now)
	for w in "${what[@]}"; do
		case $w in
		k8s) for v in $K8S_VERSIONS; do build_k8s_and_pause "$v"; done ;;
		crictl) build_crictl ;;
		cni) build_cni ;;
		coredns) build_coredns ;;
		debian) build_k8s_debian ;;
		*) die "unknown part: $w (k8s, crictl, cni, coredns, debian)" ;;
		esac
	done
	log "all done in $(since "$start") s: ${what[*]}"
}

main "$@"
