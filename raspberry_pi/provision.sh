#!/usr/bin/env bash
# Turn a fresh Raspberry Pi OS (Bookworm) into a Loa device. Safe to run again: every step
# first looks whether it is already done.
#
#   sudo raspberry_pi/provision.sh --profile speaker-cluster --hub https://hub.tinh.gov.vn \
#        --code ABCD-1234            # enroll now
#   raspberry_pi/provision.sh --dry-run --profile led-board-p10   # print every action only
#
# LOA_ROOT (default empty) prefixes every system path; tests point it at a scratch folder.
set -euo pipefail

ROOT="${LOA_ROOT:-}"
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/opt/loa"
VENV="$PREFIX/venv"
STATE="$ROOT/var/lib/loa"
DATA="$STATE/agent"
UNIT_DIR="$ROOT/etc/systemd/system"
JOURNALD_DIR="$ROOT/etc/systemd/journald.conf.d"
FSTAB="$ROOT/etc/fstab"
USER_NAME=loa
# poppler-utils renders and reads documents (PDF) for boards and speakers; the colour emoji
# font draws emoji on boards (without it they are left out).
PACKAGES=(python3 python3-venv python3-lgpio vlc-bin vlc-plugin-base espeak-ng
  fonts-noto-core fonts-noto-color-emoji poppler-utils libsdl2-2.0-0 ca-certificates)

DRY_RUN=0
PROFILE=""
HUB=""
CODE=""

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

say() { printf '== %s\n' "$*"; }

# Every change goes through here: in dry-run mode it is printed, never done.
run() {
  if [[ $DRY_RUN -eq 1 ]]; then
    printf '+ %s\n' "$*"
  else
    "$@"
  fi
}

# Write stdin to a file only if the content differs (so reruns change nothing).
put_file() {
  local dest=$1 mode=$2 content
  content=$(cat)
  if [[ -f $dest ]] && [[ "$(cat "$dest")" == "$content" ]]; then
    say "unchanged: $dest"
    return 0
  fi
  if [[ $DRY_RUN -eq 1 ]]; then
    printf '+ write %s (mode %s)\n' "$dest" "$mode"
    return 0
  fi
  install -D -m "$mode" /dev/null "$dest"
  printf '%s\n' "$content" >"$dest"
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    --profile) PROFILE=${2:?--profile needs a name}; shift ;;
    --hub) HUB=${2:?--hub needs a URL}; shift ;;
    --code) CODE=${2:?--code needs the one-time code}; shift ;;
    -h | --help) usage 0 ;;
    *) printf 'unknown option: %s\n' "$1" >&2; usage 2 ;;
  esac
  shift
done

if [[ -z $PROFILE ]]; then
  printf 'choose a hardware profile with --profile; known:' >&2
  for f in "$SRC"/firmware_profiles/*.toml; do printf ' %s' "$(basename "$f" .toml)" >&2; done
  printf '\n' >&2
  exit 2
fi
if [[ ! -f "$SRC/firmware_profiles/$PROFILE.toml" ]]; then
  printf 'no such profile: %s\n' "$PROFILE" >&2
  exit 2
fi
if [[ $DRY_RUN -eq 0 && $EUID -ne 0 ]]; then
  printf 'run as root (sudo), or with --dry-run to see what would be done\n' >&2
  exit 1
fi

say "packages"
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  run apt-get update
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
  say "all packages present"
fi

say "user $USER_NAME"
if ! id "$USER_NAME" >/dev/null 2>&1; then
  run useradd --system --home-dir /var/lib/loa --shell /usr/sbin/nologin "$USER_NAME"
fi
for group in audio video gpio render input; do
  if getent group "$group" >/dev/null && ! id -nG "$USER_NAME" 2>/dev/null | grep -qw "$group"; then
    run usermod -aG "$group" "$USER_NAME"
  fi
done

say "software in $PREFIX"
run install -d -m 0755 "$PREFIX"
run install -d -m 0750 "$STATE" "$DATA"
run chown -R "$USER_NAME:$USER_NAME" "$STATE"
if [[ ! -x $VENV/bin/python ]]; then
  # System site packages: lgpio comes from Debian, built for this kernel.
  run python3 -m venv --system-site-packages "$VENV"
fi
run "$VENV/bin/pip" install --quiet --upgrade "${SRC}[agent]"

say "profile $PROFILE"
put_file "$ROOT/etc/default/loa-agent" 0644 <<EOF
# Written by provision.sh; extra arguments for edge-agent run.
LOA_AGENT_ARGS=
LOA_PROFILE=$PROFILE
EOF

say "enrollment"
if [[ -f $DATA/identity.json ]]; then
  say "already enrolled ($DATA/identity.json)"
elif [[ -n $HUB && -n $CODE ]]; then
  run runuser -u "$USER_NAME" -- "$VENV/bin/edge-agent" enroll --hub "$HUB" --code "$CODE" \
    --data "$DATA" --profile "$PROFILE"
else
  say "not enrolled: run again with --hub URL --code CODE"
fi

say "log limits and SD card protection"
put_file "$JOURNALD_DIR/loa.conf" 0644 <"$SRC/systemd/journald-loa.conf"
run systemctl restart systemd-journald
if [[ -f $FSTAB ]] && awk '$2 == "/" && $4 !~ /noatime/ {found=1} END {exit !found}' "$FSTAB"; then
  # No access-time writes on every read of every file: the cheapest SD-card saving there is.
  run sed -i -E 's|^([^#[:space:]]+[[:space:]]+/[[:space:]]+[^[:space:]]+[[:space:]]+)([^[:space:]]+)|\1\2,noatime|' "$FSTAB"
else
  say "root already mounted noatime (or no fstab)"
fi
if systemctl is-enabled dphys-swapfile >/dev/null 2>&1; then
  # Swap on an SD card wears it out; the agent fits in RAM.
  run systemctl disable --now dphys-swapfile
fi

say "systemd unit"
put_file "$UNIT_DIR/loa-agent.service" 0644 <"$SRC/systemd/loa-agent.service"
run systemctl daemon-reload
if [[ -f $DATA/identity.json || $DRY_RUN -eq 1 ]]; then
  run systemctl enable --now loa-agent.service
else
  run systemctl enable loa-agent.service
fi

say "done; check the device with: sudo -u $USER_NAME $VENV/bin/edge-agent doctor --data $DATA"
