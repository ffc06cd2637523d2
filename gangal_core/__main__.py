"""``python -m gangal_core`` works like the ``gangal`` command."""

from gangal_core.cli import main

if __name__ == "__main__":
    main()
