#!/usr/bin/env bash
# redis-k8s hook benchmarks (issue #8). Usage: benches/run.sh [--quick] [hookbench options...]
#
# 1. builds the static release binaries: the charm, the harness and the floor binaries
#    (+crt-static for x86_64-unknown-linux-gnu only, as `make build` does);
# 2. builds redis-k8s.charm (`make charm` when the Makefile has it, else a zip of the same files);
# 3. creates benches/.venv from PyPI when missing (charms.reactive, charmhelpers, ops, PyYAML);
# 4. runs every hook of the lifecycle for every contender (target/hookbench/ is the scratch dir) and
#    prints the Markdown report, also written to benches/RESULTS.md (benches/RESULTS-quick.md with --quick,
#    which is not committed).
# Full run: about 10 min on 2 cores; --quick: under a minute. Only step 3 uses the network.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
TARGET=x86_64-unknown-linux-gnu
REL=target/$TARGET/release

quick=
for a in "$@"; do [ "$a" = --quick ] && quick=1; done

echo "run.sh: building static release binaries" >&2
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --quiet --release --target $TARGET --workspace --bins

CHARM_FILE=
if [ -f Makefile ] && grep -q '^charm:' Makefile; then
  make --quiet charm >&2
  CHARM_FILE=$REPO/redis-k8s.charm
elif command -v zip >/dev/null; then
  stage=target/hookbench-charm
  rm -rf $stage && mkdir -p $stage/hooks
  cp metadata.yaml config.yaml layer.yaml $stage/
  cp $REL/redis-k8s $stage/dispatch
  for h in hooks/*; do ln -s ../dispatch "$stage/$h"; done
  (cd $stage && rm -f ../redis-k8s.charm && zip -q -X -y ../redis-k8s.charm metadata.yaml config.yaml layer.yaml dispatch hooks/*)
  CHARM_FILE=$REPO/target/redis-k8s.charm
else
  echo "run.sh: zip not found: the .charm size is left out (apt-get install zip)" >&2
fi

VENV=benches/.venv
# A list of package names, split into words where it is used.
PKGS="charms.reactive charmhelpers ops PyYAML"
# shellcheck disable=SC2086 # $PKGS is split into one argument per package
have_pkgs() {
  $VENV/bin/python3 -c 'import sys, importlib.metadata as m; [m.version(p) for p in sys.argv[1:]]' $PKGS 2>/dev/null
}
if ! [ -x $VENV/bin/python3 ] || ! have_pkgs; then
  echo "run.sh: creating $VENV from PyPI ($PKGS)" >&2
  rm -rf $VENV
  python3 -m venv $VENV
  # shellcheck disable=SC2086 # one argument per package
  $VENV/bin/pip install --quiet --disable-pip-version-check $PKGS
fi
# charmhelpers refuses to import on a platform whose os-release NAME it does not know, and it only
# recognises Debian as lowercase "debian" (osplatform.get_platform). Juju runs hooks on Ubuntu, where
# the check passes; make "Debian GNU/Linux" pass the same way (it then loads the Ubuntu host module).
osp=$($VENV/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/charmhelpers/osplatform.py
sed -i 's/elif "debian" in current_platform:/elif "debian" in current_platform.lower():/' "$osp"

out=benches/RESULTS.md
[ -n "$quick" ] && out=benches/RESULTS-quick.md
cmd="benches/run.sh${*:+ $*}"
exec $REL/hookbench --repo "$REPO" --work "$REPO/target/hookbench" \
  --charm-bin "$REPO/$REL/redis-k8s" --exit0-bin "$REPO/$REL/floor-exit0" --replay-bin "$REPO/$REL/floor-replay" \
  --venv "$REPO/$VENV" ${CHARM_FILE:+--charm-file "$CHARM_FILE"} --out "$out" --command "$cmd" "$@"
