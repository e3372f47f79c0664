"""``python -m rtrank.streams …`` is the ``rtrank`` command."""

from rtrank.streams.cli.main import main

if __name__ == "__main__":  # not when the model process (spawned) imports it
    main()
