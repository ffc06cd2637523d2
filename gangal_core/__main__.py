"""``python -m gangal_core`` works like the ``gangal`` command."""

from .cli import main

if __name__ == "__main__":
    main()
