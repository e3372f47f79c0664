"""The ``rtrank`` command line: `rtrank.streams.cli.main.main` is its entry point."""
