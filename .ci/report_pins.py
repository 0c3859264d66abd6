"""Check a ``pip install --dry-run --report`` against constraints.txt (.ci/resolve_check.sh).

Prints how many packages the resolution holds; exits 1 naming any package that
constraints.txt does not pin (this project's own distribution aside).
"""

import json
import re
import sys


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(report_path: str, constraints_path: str) -> int:
    pins = {}
    for line in open(constraints_path):
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    with open(report_path) as handle:
        installs = json.load(handle)["install"]
    unpinned = []
    for item in installs:
        metadata = item["metadata"]
        name = canonical(metadata["name"])
        if name != "galmorph-workflow" and name not in pins:
            unpinned.append(f"{name}=={metadata['version']}")
    if unpinned:
        print(f"   resolves, but constraints.txt does not pin: {', '.join(unpinned)}")
        return 1
    print(f"   resolves: {len(installs)} packages, each at its constraints.txt version")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
