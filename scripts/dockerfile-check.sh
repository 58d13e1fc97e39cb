#!/usr/bin/env bash
# The Dockerfile's build, checked without a container engine: the build
# stage's COPY lines are copied exactly (no more) into an empty directory, as
# `docker build` would send them past .dockerignore, and the stage's cargo
# command is run there as `cargo check` (everything the compiler reads at
# build time: build.rs, include_str!, the migrations sqlx::migrate! embeds);
# the runtime stage's own COPY sources must exist, and the image runs as a
# user that is not root, with a HEALTHCHECK. Exit 1 naming what fails.
#
# Usage: scripts/dockerfile-check.sh   (env: CARGO_TARGET_DIR, default this
#        checkout's target/: the dependencies `cargo clippy` checked are reused;
#        the copied crate is another package path, so nothing of ours is overwritten)
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "dockerfile-check: $*" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

# Top-level .dockerignore patterns (trailing slashes dropped).
ignored=()
if [ -f .dockerignore ]; then
  while IFS= read -r pat; do
    pat=${pat%/}
    [ -n "$pat" ] && [ "${pat:0:1}" != "#" ] && ignored+=("$pat")
  done < .dockerignore
fi
is_ignored() {
  local p
  for p in "${ignored[@]}"; do
    # shellcheck disable=SC2053 # the pattern is a glob on purpose
    [[ $1 == $p || $1 == $p/* ]] && return 0
  done
  return 1
}

stage=0 workdir=/ build_dir="" run="" user="" healthcheck=""
while IFS= read -r line; do
  read -r -a words <<< "$line"
  [ ${#words[@]} -eq 0 ] && continue
  case "${words[0]}" in
    FROM) stage=$((stage + 1)) ;;
    WORKDIR)
      workdir=${words[1]}
      [ "$stage" -eq 1 ] && build_dir=$workdir
      ;;
    COPY)
      args=("${words[@]:1}")
      [[ ${args[0]} == --from=* ]] && continue
      dest=${args[-1]}
      unset 'args[-1]'
      for src in "${args[@]}"; do
        [ -e "$src" ] || fail "COPY $src: no such file or directory in the build context"
        is_ignored "$src" && fail "COPY $src: excluded by .dockerignore"
        if [ "$stage" -eq 1 ]; then
          # Relative destinations are under WORKDIR; a trailing / keeps the name.
          case "$dest" in /*) to=$ctx$dest ;; *) to=$ctx$workdir/$dest ;; esac
          if [[ $dest == */ ]]; then
            mkdir -p "$to" && cp -R "$src" "$to"
          else
            mkdir -p "$(dirname "$to")" && cp -R "$src" "$to"
          fi
        fi
      done
      ;;
    RUN) [ "$stage" -eq 1 ] && run=${line#RUN } ;;
    USER) user=${words[1]} ;;
    HEALTHCHECK) healthcheck=$line ;;
  esac
done < Dockerfile

[ "$stage" -ge 2 ] || fail "expected a build stage and a runtime stage, found $stage stage(s)"
case "$user" in "" | root | 0 | 0:*) fail "the image runs as root (USER: ${user:-unset})" ;; esac
[ -n "$healthcheck" ] || fail "the image has no HEALTHCHECK"
[[ $run == "cargo build --release "* ]] || fail "the build stage's RUN is not \`cargo build --release …\`: $run"
check=${run/cargo build --release/cargo check}
target=${CARGO_TARGET_DIR:-$PWD/target}
[ -n "$build_dir" ] || fail "the build stage has no WORKDIR"
echo "== dockerfile-check: ${check} in a context of: $(cd "$ctx$build_dir" && ls -A | tr '\n' ' ')"
(cd "$ctx$build_dir" && CARGO_TARGET_DIR=$target $check --quiet) || fail "the build stage does not compile from what it copies"
echo "dockerfile-check: ok"
