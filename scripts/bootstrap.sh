#!/usr/bin/env bash
# Prepare this machine for Loa: Debian packages (when root), then .venv with the project.
# Usage: scripts/bootstrap.sh [demo|test]   — "test" also installs the test-only packages.
set -euo pipefail
cd "$(dirname "$0")/.."
purpose="${1:-demo}"

# What libvlc, speech, fonts and the browser tests need from Debian.
debs=(vlc-bin vlc-plugin-base libvlc5 espeak-ng fonts-dejavu-core fonts-noto-core fonts-noto-color-emoji poppler-utils python3-venv)
if [ "$purpose" = test ]; then
  debs+=(chromium sox shellcheck systemd nginx-light postgresql postgresql-client ffmpeg iproute2)
fi

missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "Loa needs these Debian packages: ${missing[*]}" >&2
    echo "Install them as root:  sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Loa needs Python 3.11 or newer (found: $("$py" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$py" -m venv .venv
fi
stamp=".venv/.installed-$purpose"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing Python packages ($purpose)"
  .venv/bin/pip install -q --upgrade pip
  if [ "$purpose" = test ]; then
    .venv/bin/pip install -q -e '.[hub,agent,test]'
  else
    .venv/bin/pip install -q -e '.[hub,agent]'
  fi
  touch "$stamp"
fi
