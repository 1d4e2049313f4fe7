#!/usr/bin/env bash
# A real LRS beside spoc-engine: installs Ralph (ralph-malph 5.1.0) in a
# virtual environment, starts `spoc serve` and Ralph forwarding statements
# to it, sends statements to Ralph and checks that mastery changed in the
# engine (scripts/ralph_forwarding.py does the steps; its options pass
# through: --spoc, --data-dir, --statements).
#
# Needs python3 with venv and pip, and the package registry (PyPI) on the
# first run. Environment:
#   RALPH_VENV  the virtual environment (default: target/ralph-venv; made
#               once per requirement list, then reused)
#   SPOC_BIN    the spoc binary (default: target/debug/spoc, else `spoc`)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${RALPH_VENV:-$root/target/ralph-venv}"
requirements="ralph-malph[lrs,cli]==5.1.0 requests==2.34.2 grpcio-tools==1.85.4"

if [[ "$(cat "$venv/.installed" 2>/dev/null)" != "$requirements" ]]; then
  python3 -m venv --clear "$venv"
  # shellcheck disable=SC2086 # the list is split on purpose
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $requirements
  echo "$requirements" > "$venv/.installed"
fi

if [[ -z "${SPOC_BIN:-}" ]]; then
  if [[ -x "$root/target/debug/spoc" ]]; then
    SPOC_BIN="$root/target/debug/spoc"
  else
    SPOC_BIN="spoc"
  fi
fi
export SPOC_BIN
exec "$venv/bin/python" "$root/scripts/ralph_forwarding.py" "$@"
