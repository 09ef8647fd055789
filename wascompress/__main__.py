"""``python -m wascompress`` is the console script ``wascompress``."""

from wascompress.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
