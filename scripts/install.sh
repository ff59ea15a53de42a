#!/usr/bin/env bash
# Installs an unpacked nats-edge release on Debian / Raspberry Pi OS as a systemd service.
#
#   sudo ./install.sh [--profile NAME] [--prefix DIR] [--no-start] [--dry-run]
#
# Safe to run again (upgrade, or a different profile): the release files are replaced, an
# existing /etc/nats-edge/nats-edge.conf is kept, the unit is rewritten only when it changes
# and the service restarted only when something changed. --dry-run prints every step and the
# unit it would write, and changes nothing.
set -euo pipefail

# Release layout, relative to the unpacked release (and to the prefix once installed).
# Keep in step with scripts/release.mjs and UNIT_LAYOUT in scripts/render-unit.mjs.
REL_LAUNCHER=${REL_LAUNCHER:-bin/nats-edge}
REL_BUNDLE=${REL_BUNDLE:-lib/nats-edge.js}
REL_PROFILES=${REL_PROFILES:-firmware-profiles}
REL_UNIT=${REL_UNIT:-deploy/nats-edge.service}
REL_READY=${REL_READY:-deploy/wait-ready.sh}
REL_CONF=${REL_CONF:-nats-edge.conf}
REL_SUMS=${REL_SUMS:-SHA256SUMS}

# Where things go on the device.
PREFIX=/opt/nats-edge
CONFIG_DIR=${CONFIG_DIR:-/etc/nats-edge}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
UNIT_NAME=nats-edge.service
SERVICE_USER=${SERVICE_USER:-nats-edge}
# Readiness: the wait script gives up a little before systemd's start timeout so that its
# own message ("not accepting connections on ...") reaches the journal.
READY_TIMEOUT_SEC=85
START_TIMEOUT_SEC=90s

# What the board detection and the preflight read (overridable for tests).
if [[ -n ${NATS_EDGE_DT_MODEL_FILE:-} ]]; then
  DT_MODEL_FILES=("$NATS_EDGE_DT_MODEL_FILE")
else
  DT_MODEL_FILES=(/proc/device-tree/model /sys/firmware/devicetree/base/model)
fi
MEMINFO_FILE=${NATS_EDGE_MEMINFO_FILE:-/proc/meminfo}
SYSTEMD_RUN_DIR=${NATS_EDGE_SYSTEMD_RUN_DIR:-/run/systemd/system}

usage() {
  cat <<EOF
Usage: install.sh [options]

Installs this nats-edge release as the systemd service nats-edge.

  --profile NAME   firmware profile (${REL_PROFILES}/NAME.json); default: detected from
                   the device-tree model and MemTotal
  --prefix DIR     install the release here (default ${PREFIX})
  --release DIR    the unpacked release (default: where this script is)
  --no-start       install and reload systemd, but do not enable or start the service
  --dry-run        print what would be done, change nothing
  -h, --help       this text

Config: ${CONFIG_DIR}/nats-edge.conf (kept if present). Data: /var/lib/nats-edge.
Secrets for \$VARIABLES in the config: ${CONFIG_DIR}/nats-edge.env (KEY=value lines).
EOF
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

DRY_RUN=0
NO_START=0
PROFILE=''
RELEASE=''
while (($# > 0)); do
  case $1 in
    --profile) PROFILE=${2:?--profile needs a name}; shift 2 ;;
    --profile=*) PROFILE=${1#*=}; shift ;;
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --release) RELEASE=${2:?--release needs a directory}; shift 2 ;;
    --release=*) RELEASE=${1#*=}; shift ;;
    --no-start) NO_START=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

# --- preflight ------------------------------------------------------------------------------

os=$(uname -s)
[[ $os == Linux ]] || die "nats-edge installs on Linux with systemd; this system is $os"
if [[ ! -d $SYSTEMD_RUN_DIR ]] || ! command -v systemctl >/dev/null 2>&1; then
  msg="systemd is not running here ($SYSTEMD_RUN_DIR missing or no systemctl): this script installs a systemd service. Without systemd, start the broker yourself: <release>/$REL_LAUNCHER -c <release>/$REL_CONF"
  ((DRY_RUN)) || die "$msg"
  echo "note: $msg (dry run: carrying on)"
fi
if ((!DRY_RUN)) && ((EUID != 0)); then
  die "run as root (sudo $0 ...), or add --dry-run to see the plan"
fi

# --- the release ----------------------------------------------------------------------------

if [[ -z $RELEASE ]]; then
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  # install.sh sits at the release's top or one folder down (scripts/).
  for candidate in "$here" "$(dirname "$here")"; do
    if [[ -e $candidate/$REL_LAUNCHER ]]; then
      RELEASE=$candidate
      break
    fi
  done
  [[ -n $RELEASE ]] || die "no $REL_LAUNCHER beside $here: run this from an unpacked release, or pass --release DIR"
fi
RELEASE=$(cd "$RELEASE" && pwd)
for rel in "$REL_LAUNCHER" "$REL_BUNDLE" "$REL_PROFILES" "$REL_UNIT" "$REL_READY" "$REL_CONF"; do
  [[ -e $RELEASE/$rel ]] || die "$RELEASE is not a complete nats-edge release: $rel is missing"
done

# A damaged download or a half-copied SD card must not become the running service.
if [[ -f $RELEASE/$REL_SUMS ]]; then
  if ! bad=$(cd "$RELEASE" && sha256sum --quiet -c "$REL_SUMS" 2>&1); then
    die "$RELEASE does not match its $REL_SUMS: ${bad//$'\n'/; }"
  fi
  echo "checked: every file matches $REL_SUMS"
fi

# systemd unit lines split on spaces and expand %: keep the prefix plain.
[[ $PREFIX == /* ]] || PREFIX=$(pwd)/$PREFIX
PREFIX=$(realpath -m "$PREFIX")
[[ $PREFIX =~ ^[A-Za-z0-9/._+-]+$ ]] || die "--prefix may only hold letters, digits and / . _ + -: $PREFIX"

# --- profile --------------------------------------------------------------------------------

# An integer field of a profile's JSON.
json_int() {
  local v
  v=$(grep -o "\"$2\"[[:space:]]*:[[:space:]]*-\{0,1\}[0-9]\{1,\}" "$1" | head -n 1 | sed 's/.*://; s/[[:space:]]//g' || true)
  printf '%s' "$v"
}

# The same rule as the broker's own detection (src/config/board.ts), so that the unit's limits
# and the broker's agree; a test compares the two. Profiles from small to big:
LADDER=(generic-arm64-256mb rpi-zero-2w rpi-3b rpi-4 rpi-5)

# MemTotal a profile needs: its MemoryMax must leave the OS >= 25 % and >= 100 MB (boards.md 4.3).
memory_needed() {
  local rss a b
  rss=$(json_int "$RELEASE/$REL_PROFILES/$1.json" rssCeiling)
  [[ $rss =~ ^[0-9]+$ ]] || die "$RELEASE/$REL_PROFILES/$1.json: no rssCeiling"
  a=$(((rss * 4 + 2) / 3))
  b=$((rss + 100000000))
  echo $((a > b ? a : b))
}

# Sets PROFILE and PROFILE_WHY from the device-tree model and MemTotal (spec/boards.md 1, 7).
detect_profile() {
  local model='' file mem_kb mem cap='' i top
  for file in "${DT_MODEL_FILES[@]}"; do
    [[ -r $file ]] || continue
    # NUL-terminated firmware text: up to the first NUL, one printable line.
    IFS= read -r -d '' model <"$file" || true
    model=${model//[[:cntrl:]]/ }
    model=${model#"${model%%[![:space:]]*}"}
    model=${model%"${model##*[![:space:]]}"}
    [[ -n $model ]] && break
  done
  # Model prefixes, never the "Rev x.y" suffix (it changes without notice); the family caps
  # the profile because CPU matters as much as RAM. "Raspberry Pi 4" covers the 400 too.
  case $model in
    'Raspberry Pi Zero 2'*) cap=rpi-zero-2w ;;
    'Raspberry Pi 3 Model'* | 'Raspberry Pi Compute Module 3'*) cap=rpi-3b ;;
    'Raspberry Pi 4'* | 'Raspberry Pi Compute Module 4'*) cap=rpi-4 ;;
    'Raspberry Pi 5'* | 'Raspberry Pi Compute Module 5'*) cap=rpi-5 ;;
  esac
  mem_kb=$(awk '/^MemTotal:/ { print $2 }' "$MEMINFO_FILE" 2>/dev/null || true)
  if [[ ! $mem_kb =~ ^[0-9]+$ ]]; then
    [[ -n $cap ]] || die "cannot read MemTotal from $MEMINFO_FILE; pass --profile NAME"
    PROFILE=$cap
    PROFILE_WHY="detected: '$model', memory size unknown"
    return
  fi
  mem=$((mem_kb * 1024))
  # Boards we do not know (and machines without a device tree, where the broker itself would
  # run without a profile) go by memory alone, up to rpi-4: sized for 2 GB, safe when bigger.
  [[ -n $cap ]] || cap=rpi-4
  top=0
  for i in "${!LADDER[@]}"; do
    [[ ${LADDER[$i]} == "$cap" ]] && top=$i
  done
  # The biggest profile up to the cap that fits; the smallest when none does.
  PROFILE=${LADDER[0]}
  for ((i = top; i >= 0; i--)); do
    if (($(memory_needed "${LADDER[$i]}") <= mem)); then
      PROFILE=${LADDER[$i]}
      break
    fi
  done
  PROFILE_WHY="detected: model '${model:-none}', MemTotal $((mem_kb / 1024)) MiB"
}

if [[ -n $PROFILE ]]; then
  PROFILE_WHY='given with --profile'
else
  detect_profile
fi
PROFILE_FILE=$RELEASE/$REL_PROFILES/$PROFILE.json
if [[ ! -f $PROFILE_FILE ]]; then
  known=''
  for f in "$RELEASE/$REL_PROFILES"/*.json; do
    f=${f##*/}
    known+=" ${f%.json}"
  done
  die "no firmware profile \"$PROFILE\" in $RELEASE/$REL_PROFILES (known:${known:- none})"
fi

# --- the unit (same rules as scripts/render-unit.mjs; a test holds the two together) -------

need_positive() {
  if [[ ! $2 =~ ^[0-9]+$ ]] || (($2 == 0)); then
    die "$PROFILE_FILE: \"$1\" must be a positive integer"
  fi
}

# systemd size: whole GiB or MiB with a suffix (base 1024 there), else bytes.
systemd_bytes() {
  local n=$1 mib=1048576 gib=1073741824
  if ((n % gib == 0)); then echo "$((n / gib))G"
  elif ((n % mib == 0)); then echo "$((n / mib))M"
  else echo "$n"
  fi
}

rss_ceiling=$(json_int "$PROFILE_FILE" rssCeiling)
memory_high=$(json_int "$PROFILE_FILE" memoryHigh)
max_old=$(json_int "$PROFILE_FILE" maxOldSpaceMb)
max_semi=$(json_int "$PROFILE_FILE" maxSemiSpaceMb)
max_conns=$(json_int "$PROFILE_FILE" maxConnections)
need_positive rssCeiling "$rss_ceiling"
need_positive maxOldSpaceMb "$max_old"
need_positive maxSemiSpaceMb "$max_semi"
need_positive maxConnections "$max_conns"
# MemoryHigh defaults to 85 % of MemoryMax, in whole MiB (spec/boards.md 4.3).
if [[ -z $memory_high ]]; then
  high_mib=$((rss_ceiling * 85 / (100 * 1048576)))
  memory_high=$((high_mib * 1048576))
fi
need_positive memoryHigh "$memory_high"
((memory_high < rss_ceiling)) || die "$PROFILE_FILE: memoryHigh must be below rssCeiling"
# V8's heap limit is old space + 3 x semi-space (spec/boards.md 5.2).
((max_old + 3 * max_semi < rss_ceiling / 1048576)) ||
  die "$PROFILE_FILE: the V8 heap (maxOldSpaceMb + 3 x maxSemiSpaceMb) does not fit under rssCeiling"
limit_nofile=$((2 * max_conns + 64))
((limit_nofile >= 1024)) || limit_nofile=1024

render_unit() {
  local text key
  local -A values=(
    [PROFILE]=$PROFILE
    [LAUNCHER]=$PREFIX/$REL_LAUNCHER
    [READY_SCRIPT]=$PREFIX/$REL_READY
    [READY_TIMEOUT_SEC]=$READY_TIMEOUT_SEC
    [START_TIMEOUT_SEC]=$START_TIMEOUT_SEC
    [CONFIG_DIR]=$CONFIG_DIR
    [CONFIG_FILE]=$CONFIG_DIR/nats-edge.conf
    [SERVICE_USER]=$SERVICE_USER
    [MEMORY_MAX]=$(systemd_bytes "$rss_ceiling")
    [MEMORY_HIGH]=$(systemd_bytes "$memory_high")
    [LIMIT_NOFILE]=$limit_nofile
    [MAX_OLD_SPACE_MB]=$max_old
    [MAX_SEMI_SPACE_MB]=$max_semi
  )
  text=$(<"$RELEASE/$REL_UNIT")
  for key in "${!values[@]}"; do
    text=${text//"@$key@"/"${values[$key]}"}
  done
  if [[ $text =~ @[A-Z_]+@ ]]; then
    die "$RELEASE/$REL_UNIT: no value for ${BASH_REMATCH[0]}"
  fi
  printf '%s\n' "$text"
}
UNIT_TEXT=$(render_unit)

# --- plan / do ------------------------------------------------------------------------------

# Prints a step; runs it unless this is a dry run.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  ((DRY_RUN)) || "$@"
}

# write FILE MODE: the text on stdin becomes FILE (atomically: temp file, then rename).
write_file() {
  local file=$1 mode=$2 text tmp
  text=$(cat)
  printf '+ write %s (mode %s)\n' "$file" "$mode"
  printf '%s\n' "$text" | sed 's/^/| /; s/^| $/|/'
  ((DRY_RUN)) && return
  tmp=$(mktemp "$file.XXXXXX")
  printf '%s\n' "$text" >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$file"
}

# True when some file of the release differs from (or is missing in) the prefix.
release_differs() {
  [[ -d $PREFIX ]] || return 0
  [[ $RELEASE == "$PREFIX" ]] && return 1
  { diff -rq "$RELEASE" "$PREFIX" 2>/dev/null || true; } | grep -qv "^Only in $PREFIX"
}

if ((DRY_RUN)); then
  echo "nats-edge install plan (dry run: nothing is changed)"
fi
echo "release: $RELEASE"
echo "prefix:  $PREFIX"
echo "profile: $PROFILE ($PROFILE_WHY)"
echo "limits:  MemoryMax $rss_ceiling, MemoryHigh $memory_high, LimitNOFILE $limit_nofile, heap --max-old-space-size=$max_old --max-semi-space-size=$max_semi"

changed=0

if ! getent passwd "$SERVICE_USER" >/dev/null; then
  run useradd --system --user-group --home-dir /var/lib/nats-edge --no-create-home \
    --shell /usr/sbin/nologin --comment 'nats-edge broker' "$SERVICE_USER"
fi

if release_differs; then
  changed=1
  run mkdir -p "$PREFIX"
  # --remove-destination: a running node binary cannot be overwritten in place (ETXTBSY).
  run cp -R --remove-destination "$RELEASE/." "$PREFIX/"
else
  echo "release files in $PREFIX are up to date"
fi

run install -d -m 0750 -o root -g "$SERVICE_USER" "$CONFIG_DIR"
if [[ -e $CONFIG_DIR/nats-edge.conf ]]; then
  echo "keeping the existing $CONFIG_DIR/nats-edge.conf (the release's default is $PREFIX/$REL_CONF)"
else
  run install -m 0640 -o root -g "$SERVICE_USER" "$RELEASE/$REL_CONF" "$CONFIG_DIR/nats-edge.conf"
fi

UNIT_FILE=$UNIT_DIR/$UNIT_NAME
if [[ -f $UNIT_FILE ]] && [[ $(<"$UNIT_FILE") == "$UNIT_TEXT" ]]; then
  echo "$UNIT_FILE is up to date"
else
  changed=1
  write_file "$UNIT_FILE" 0644 <<<"$UNIT_TEXT"
fi

run systemctl daemon-reload
if ((NO_START)); then
  echo "not started (--no-start); to start now and at every boot: systemctl enable --now $UNIT_NAME"
  exit 0
fi
# The start returns once the broker accepts connections (the unit's ExecStartPost), or fails.
fail_hint="the service did not become ready: journalctl -u $UNIT_NAME -n 50"
if ((changed)); then
  run systemctl enable "$UNIT_NAME"
  run systemctl restart "$UNIT_NAME" || die "$fail_hint"
else
  run systemctl enable --now "$UNIT_NAME" || die "$fail_hint"
fi
((DRY_RUN)) || echo "nats-edge is running: systemctl status $UNIT_NAME"
