"""``rtrank keys``: the key pair that signs model updates.

    rtrank keys new --out keys/     # keys/update-signing.key (trainer), keys/update-signing.pub

Give the private key to the trainer (``RTRANK_UPDATE_SIGNING_KEY_FILE``, and to whoever runs
``rtrank rollback``) and the public key to every worker (``RTRANK_UPDATE_VERIFY_KEY_FILE``);
see `rtrank.streams.trainer.update_signing`.
"""

from __future__ import annotations

from pathlib import Path

import click

from rtrank.streams.trainer.update_signing import new_key_pair


@click.group("keys")
def keys() -> None:
    """Keys that sign model updates (trainer) and verify them (workers)."""


@keys.command("new")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="directory for update-signing.key (private, mode 600) and update-signing.pub",
)
def new(out: Path) -> None:
    """Make a new Ed25519 key pair; never overwrites one."""
    try:
        private_path, public_path = new_key_pair(out)
    except (FileExistsError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"RTRANK_UPDATE_SIGNING_KEY_FILE={private_path}  # trainer, rtrank rollback")
    click.echo(f"RTRANK_UPDATE_VERIFY_KEY_FILE={public_path}  # workers")
