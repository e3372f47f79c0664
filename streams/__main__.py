"""``python -m streams …`` is the ``rtrank`` command."""

from streams.app import main

main()
