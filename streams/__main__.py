"""``python -m streams …`` is the ``rtrank`` command."""

from streams.app import main

if __name__ == "__main__":  # not when the model process (spawned) imports it
    main()
