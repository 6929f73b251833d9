"""xinim-run (its issue has not landed yet)."""
from __future__ import annotations

import sys


def main() -> int:
    print("xinim-run: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
