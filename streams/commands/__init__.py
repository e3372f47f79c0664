"""rtrank's commands, added to the Faust app's own command line by ``register``."""

from __future__ import annotations

import click

from streams.commands.bench import bench
from streams.commands.demo import demo
from streams.commands.kafka import kafka
from streams.commands.produce import produce
from streams.commands.tail import tail
from streams.commands.trainer import trainer_command
from streams.commands.training import eval_command, train_command


def register(cli: click.Group) -> None:
    for command in (
        kafka,
        produce,
        tail,
        demo,
        train_command,
        eval_command,
        bench,
        trainer_command,
    ):
        cli.add_command(command)
