#!/usr/bin/env bash
# The whole test suite, offline, on the CPU: installs what it needs, then runs pytest.
# PostgreSQL and Chromium are started by the tests themselves on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
# --durations: the suite must stay under 15 minutes here; the slowest tests are the ones to trim
python3 -m pytest -q -p no:cacheprovider --durations=25 "$@"
