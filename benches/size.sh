#!/usr/bin/env bash
# What makes the redis-k8s binary big, and what each proposed trim saves (issue #8).
# Usage: benches/size.sh            (about 10 min on 2 cores: one LTO build per variant)
#
# Builds the static, stripped release binary exactly as `make build` does, once per variant, in a
# scratch copy of the tree (target/size/src) so the repo's Cargo.toml is never touched, and prints
# the size and the saving of each. Then `cargo bloat` (cargo install cargo-bloat) on an unstripped
# build lists the largest crates. Panic behaviour with panic = "abort" is checked by forcing one.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
TARGET=x86_64-unknown-linux-gnu
SCRATCH=$REPO/target/size
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static"

rm -rf "$SCRATCH/src" && mkdir -p "$SCRATCH/src"
git ls-files -z | grep -z -v '^benches/' | xargs -0 cp --parents -t "$SCRATCH/src"
# The scratch tree is a workspace of its own, without the bench harness.
sed -i 's|^members = .*|members = ["."]|' "$SCRATCH/src/Cargo.toml"

# build NAME [sed expression on Cargo.toml] [env...]: prints "NAME bytes". $PATCH, when set, is a
# command run in the variant's copy before the build.
build() {
  local name=$1 expr=$2; shift 2
  local dir=$SCRATCH/$name
  rm -rf "$dir" && cp -r "$SCRATCH/src" "$dir"
  [ -n "$expr" ] && sed -i "$expr" "$dir/Cargo.toml"
  [ -n "${PATCH:-}" ] && (cd "$dir" && eval "$PATCH")
  (cd "$dir" && env "$@" CARGO_TARGET_DIR="$SCRATCH/target-$name" cargo build --quiet --release --target $TARGET --bin redis-k8s)
  printf '%s %s\n' "$name" "$(stat -c %s "$SCRATCH/target-$name/$TARGET/release/redis-k8s")"
}

results=$SCRATCH/results.txt
: >"$results"
build baseline '' X=1 | tee -a "$results"
build opt-s '' CARGO_PROFILE_RELEASE_OPT_LEVEL=s | tee -a "$results"
build opt-z '' CARGO_PROFILE_RELEASE_OPT_LEVEL=z | tee -a "$results"
build panic-abort '' CARGO_PROFILE_RELEASE_PANIC=abort | tee -a "$results"
# clap without its default features (color, suggestions, auto-wrapping); keeps derive, help, usage, errors.
build clap-lean 's|^clap = .*|clap = { version = "4.6.9", default-features = false, features = ["std", "derive", "help", "usage", "error-context"] }|' X=1 | tee -a "$results"
# No clap at all: main.rs's three flags (--list-hooks, --help, --version) parsed by hand.
# shellcheck disable=SC2016 # PATCH is eval'd by build, where $REPO is set
PATCH='python3 "$REPO/benches/size-no-clap.py" src/main.rs && sed -i "/^clap = /d" Cargo.toml' \
  build no-clap '' X=1 | tee -a "$results"
# shellcheck disable=SC2016 # as above
PATCH='python3 "$REPO/benches/size-no-clap.py" src/main.rs && sed -i "/^clap = /d" Cargo.toml' \
  build no-clap-opt-s-abort '' CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_PANIC=abort | tee -a "$results"
build all-trims 's|^clap = .*|clap = { version = "4.6.9", default-features = false, features = ["std", "derive", "help", "usage", "error-context"] }|' \
  CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_PANIC=abort | tee -a "$results"

base=$(awk '$1=="baseline"{print $2}' "$results")
echo
echo "| variant | bytes | saved vs baseline |"
echo "|---|---:|---:|"
while read -r name bytes; do
  echo "| $name | $bytes | $((base - bytes)) |"
done <"$results"

# A panic with panic = "abort": the binary's panic hook must still print one line on stderr and exit 1
# (the hook runs before the abort would, and calls exit(1) itself). Forced by running a hook with
# stdout on /dev/full: println! then panics with "failed printing to stdout".
echo
unit=$SCRATCH/panic-unit
rm -rf "$unit" && mkdir -p "$unit/tools" "$unit/charm" "$unit/state" "$unit/resources/redis-image"
cp benches/fake-tools/fake-tool "$unit/tools/"
for t in config-get is-leader resource-get status-set pod-spec-set juju-log network-get relation-ids \
  relation-list relation-get relation-set state-get state-set application-version-set; do ln -s fake-tool "$unit/tools/$t"; done
cp metadata.yaml config.yaml layer.yaml "$unit/charm/"
printf 'registrypath: redis:7.0\nusername: ""\npassword: ""\n' >"$unit/resources/redis-image/content.yaml"
for name in baseline panic-abort; do
  rm -rf "$unit/state" && mkdir "$unit/state"
  set +e
  err=$(cd "$unit/charm" && env -i JUJU_UNIT_NAME=redis-k8s/0 JUJU_CHARM_DIR="$unit/charm" JUJU_HOOK_NAME=install \
    JUJU_DISPATCH_PATH=hooks/install PATH="$unit/tools:/usr/bin:/bin" FAKE_TOOL_LOG=/dev/null FAKE_PORT=6379 \
    "$SCRATCH/target-$name/$TARGET/release/redis-k8s" 2>&1 >/dev/full)
  code=$?
  set -e
  echo "$name: exit $code; stderr has $(printf '%s\n' "$err" | grep -c .) line(s): $err"
done

if command -v cargo-bloat >/dev/null; then
  echo
  echo "cargo bloat --crates (unstripped, otherwise the same build):"
  (cd "$SCRATCH/src" && CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR="$SCRATCH/target-bloat" \
    cargo bloat --release --target $TARGET --bin redis-k8s --crates -n 15)
  echo
  echo "cargo bloat (largest functions):"
  (cd "$SCRATCH/src" && CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR="$SCRATCH/target-bloat" \
    cargo bloat --release --target $TARGET --bin redis-k8s -n 15)
fi
