#!/usr/bin/env bash
# Tools for the NAT lab (tests/helpers/natlab.ts). Idempotent and quick once cached: CI calls it on
# every run.
#
#   bash scripts/natlab/tools.sh           # ensure ip + nft, unpack coturn and miniupnpd, print paths
#   bash scripts/natlab/tools.sh --check   # exit 0 only when everything is in place (changes nothing)
#
# - `ip` (iproute2) and `nft` (nftables) are installed with apt-get when missing. Installing nftables
#   loads no rules and starts no service (Debian's postinst only re-enables a unit that was enabled
#   before); we still check that the root namespace's ruleset is the same before and after.
# - coturn (`turnserver`, and its test client `turnutils_uclient`) and miniupnpd-nftables
#   (`miniupnpd`) are NOT installed: their packages are
#   fetched with `apt-get download` and unpacked with `dpkg-deb -x` into $CACHE/root, with the shared
#   libraries they need that the system lacks, so no daemon, user, unit or config appears in the root
#   namespace. Wrappers in $CACHE/bin set LD_LIBRARY_PATH; the lab runs them inside its namespaces,
#   each with an explicit config file that names lab addresses only.
set -euo pipefail
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

CACHE="${MAILMEET_LAB_CACHE:-/var/cache/mailmeet-lab}"
ROOT="$CACHE/root"
BIN="$CACHE/bin"
DEBS="$CACHE/debs"
PACKAGES=(coturn miniupnpd-nftables)
# name in $BIN = path inside the unpacked packages
TOOLS=("turnserver=usr/bin/turnserver" "miniupnpd=usr/sbin/miniupnpd" "turnutils_uclient=usr/bin/turnutils_uclient")
MAX_LIBRARY_ROUNDS=5

say() { echo "natlab-tools: $*" >&2; }
die() {
  say "$*"
  exit 1
}

# --- ip and nft ------------------------------------------------------------------------------------

has_net_tools() { command -v ip >/dev/null 2>&1 && command -v nft >/dev/null 2>&1; }

root_ruleset() { if command -v nft >/dev/null 2>&1; then nft list ruleset 2>&1; fi; }

NFT_WANTS=/etc/systemd/system/sysinit.target.wants/nftables.service

install_net_tools() {
  has_net_tools && return 0
  command -v apt-get >/dev/null 2>&1 || die "ip or nft is missing and there is no apt-get to install them"
  local before after wanted_before=no
  before="$(root_ruleset)"
  [ -e "$NFT_WANTS" ] && wanted_before=yes
  say "installing iproute2 nftables (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d answering 101 is Debian's switch for "start no service while installing".
  local policy=/usr/sbin/policy-rc.d own_policy=no
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    own_policy=yes
  fi
  local ok=yes log
  log="$(mktemp)"
  if ! apt-get install -y -q --no-install-recommends iproute2 nftables >"$log" 2>&1; then
    apt-get update -q >>"$log" 2>&1 || true
    apt-get install -y -q --no-install-recommends iproute2 nftables >>"$log" 2>&1 || ok=no
  fi
  [ "$own_policy" = yes ] && rm -f "$policy"
  if [ "$ok" = no ]; then
    tail -n 30 "$log" >&2
    die "apt-get install iproute2 nftables failed"
  fi
  rm -f "$log"
  if [ "$wanted_before" = no ] && [ -e "$NFT_WANTS" ]; then
    say "the nftables package enabled its service: disabling it again (the lab never loads rules in the root namespace)"
    rm -f "$NFT_WANTS"
  fi
  after="$(root_ruleset)"
  [ "$before" = "$after" ] || die "the root namespace's nftables ruleset changed while installing nftables; look at 'nft list ruleset'"
  has_net_tools || die "ip or nft still missing after apt-get install"
}

# --- coturn and miniupnpd, unpacked ----------------------------------------------------------------

library_dirs() {
  find "$1" -name '*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -
}

# Prints the sonames a binary cannot resolve (nothing when all resolve).
missing_libs() {
  local root="$1" bin="$2"
  LD_LIBRARY_PATH="$(library_dirs "$root")" ldd "$root/$bin" 2>/dev/null | awk '/not found/ {print $1}'
}

tools_ready() {
  local t name
  for t in "${TOOLS[@]}"; do
    name="${t%%=*}"
    [ -x "$BIN/$name" ] && [ -x "$ROOT/${t#*=}" ] || return 1
    [ -z "$(missing_libs "$ROOT" "${t#*=}")" ] || return 1
  done
}

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

UPDATED=no
# apt-get download of several packages at once (one apt start-up, which is most of the time).
download() {
  (cd "$DEBS" && apt-get download -q "$@" >/dev/null 2>&1) && return 0
  if [ "$UPDATED" = no ]; then
    UPDATED=yes
    apt-get update -q >/dev/null 2>&1 || true
    (cd "$DEBS" && apt-get download -q "$@" >/dev/null 2>&1) && return 0
  fi
  die "apt-get download $* failed"
}

# Library packages a .deb depends on (first alternative, no versions), one per line.
lib_depends() {
  dpkg-deb -f "$1" Depends Pre-Depends 2>/dev/null | sed -e 's/^[A-Za-z-]*: //' | tr ',' '\n' |
    sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' | grep '^lib' || true
}

unpack_tools() {
  command -v apt-get >/dev/null 2>&1 || die "there is no apt-get to fetch coturn and miniupnpd"
  mkdir -p "$DEBS" "$BIN"
  # _apt must be able to write the download folder, or apt warns and downloads unsandboxed.
  chown _apt "$DEBS" 2>/dev/null || true
  local new="$CACHE/root.new" pkg deb round t lib missing
  rm -rf "$new" "$DEBS"/*.deb
  mkdir -p "$new"
  local -A done_pkgs=()
  local queue=("${PACKAGES[@]}")
  for round in $(seq 1 "$MAX_LIBRARY_ROUNDS"); do
    local todo=()
    for pkg in "${queue[@]+"${queue[@]}"}"; do
      [ -n "${done_pkgs[$pkg]:-}" ] && continue
      done_pkgs[$pkg]=1
      todo+=("$pkg")
    done
    [ "${#todo[@]}" = 0 ] && break
    say "unpacking ${todo[*]}"
    download "${todo[@]}"
    local next=()
    for pkg in "${todo[@]}"; do
      deb="$(ls -t "$DEBS/${pkg}"_*.deb | head -1)"
      dpkg-deb -x "$deb" "$new"
      for lib in $(lib_depends "$deb"); do
        [ -n "${done_pkgs[$lib]:-}" ] || installed "$lib" || next+=("$lib")
      done
    done
    queue=("${next[@]+"${next[@]}"}")
  done
  for t in "${TOOLS[@]}"; do
    missing="$(missing_libs "$new" "${t#*=}")"
    [ -z "$missing" ] || die "${t#*=} still lacks shared libraries: $(echo "$missing" | paste -sd' ' -)"
  done
  rm -rf "$ROOT"
  mv "$new" "$ROOT"
  local libs
  libs="$(library_dirs "$ROOT")"
  for t in "${TOOLS[@]}"; do
    cat >"$BIN/${t%%=*}" <<EOF
#!/bin/sh
# Runs the unpacked ${t%%=*} with its libraries (written by scripts/natlab/tools.sh).
LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$ROOT/${t#*=}" "\$@"
EOF
    chmod 0755 "$BIN/${t%%=*}"
  done
  dpkg-deb -f "$(ls -t "$DEBS"/coturn_*.deb | head -1)" Version >"$CACHE/coturn.version"
  dpkg-deb -f "$(ls -t "$DEBS"/miniupnpd-nftables_*.deb | head -1)" Version >"$CACHE/miniupnpd.version"
}

print_paths() {
  local t
  for t in "${TOOLS[@]}"; do echo "${t%%=*}=$BIN/${t%%=*}"; done
  echo "ip=$(command -v ip)"
  echo "nft=$(command -v nft)"
}

if [ "${1:-}" = "--check" ]; then
  has_net_tools && tools_ready
  exit
fi

if [ "$(id -u)" != 0 ]; then
  say "not root: nothing installed (the NAT lab needs root; its tests skip without it)"
  exit 0
fi
install_net_tools
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
tools_ready || unpack_tools
print_paths
