"""`teleport-web-build`: fetch the web UI's third-party parts from the npm registry (by the
committed package-lock.json) and copy them where the proxy serves them (static/vendor/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            print(
                f"teleport-web-build: {tool!r} is not installed; the web UI needs Node.js and npm "
                "to fetch xterm.js (Debian: apt-get install nodejs npm). tsh and the rest of "
                "teleport work without it.",
                file=sys.stderr,
            )
            return 1
    for cmd in (["npm", "ci", "--no-audit", "--no-fund"], ["node", "build.mjs"]):
        result = subprocess.run(cmd, cwd=HERE)
        if result.returncode != 0:
            print(f"teleport-web-build: {' '.join(cmd)} failed in {HERE}", file=sys.stderr)
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
