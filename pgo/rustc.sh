#!/bin/sh
# cargo's rustc wrapper (.cargo/config.toml): optimised builds (release,
# bench) are guided by pgo/portero.profdata, the counts of a training run
# of the gateway (benches/pgo.sh). Debug builds, cargo's own queries and
# that run's instrumented build pass through unchanged, as does a build
# by another rustc than the one that wrote the profile, which it may not
# read, and any build when the profile is missing.
here=$(cd "$(dirname "$0")" && pwd)
# Under clippy, cargo runs `wrapper clippy-driver rustc ARGS`.
compiler=$1
case $(basename "$1") in clippy-driver*) compiler=$2 ;; esac
optimised=0
for arg in "$@"; do
  case $arg in
    opt-level=3) optimised=1 ;;
    -Cprofile-generate* | profile-generate* | -Cprofile-use* | profile-use*) exec "$@" ;;
  esac
done
if [ "$optimised" = 1 ] && [ -f "$here/portero.profdata" ] && [ -r "$here/rustc-version" ] &&
  [ "$("$compiler" -V)" = "$(cat "$here/rustc-version")" ]; then
  exec "$@" "-Cprofile-use=$here/portero.profdata"
fi
exec "$@"
