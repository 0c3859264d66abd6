#!/usr/bin/env bash
# Does the pinned set (constraints.txt) resolve, with pyproject.toml's ranges and the
# test extra, on each Python that galmorph supports (3.11, 3.12, 3.13)? pip resolves
# without installing (--dry-run, wheels' metadata only). Every version this machine
# provides is checked and named; one that does not resolve fails the check, and one
# the machine lacks is reported as not verified (never as passed).
#
# Usage: bash .ci/resolve_check.sh   (needs PyPI)
set -uo pipefail
cd "$(dirname "$0")/.."

find_python() {  # the interpreter of Python $1 (3.12, ...), or nothing
    local version=$1 candidate
    for candidate in "python$version" "$HOME"/.pyenv/versions/"$version".*/bin/python \
        /usr/local/bin/"python$version" /usr/bin/"python$version"; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$version'.split('.'))))" 2>/dev/null &&
            "$candidate" -m pip --version >/dev/null 2>&1; then
            command -v "$candidate"
            return
        fi
    done
}

status=0
verified=()
missing=()
for version in 3.11 3.12 3.13; do
    python=$(find_python "$version")
    if [ -z "$python" ]; then
        missing+=("$version")
        continue
    fi
    report=$(mktemp)
    echo "== Python $version ($python): resolving -c constraints.txt -e '.[test]'"
    if "$python" -m pip install --dry-run --ignore-installed --quiet --report "$report" \
        -c constraints.txt -e '.[test]' 2> >(grep -v "WARNING: Location" >&2); then
        # Every package pip would install must be one constraints.txt pins: a package
        # that only this Python pulls in would otherwise go untested at a free version.
        if "$python" .ci/report_pins.py "$report" constraints.txt; then
            verified+=("$version")
        else
            status=1
        fi
    else
        echo "   DOES NOT RESOLVE on Python $version" >&2
        status=1
    fi
    rm -f "$report"
done
echo "verified: ${verified[*]:-none}; not available on this machine: ${missing[*]:-none}"
exit "$status"
