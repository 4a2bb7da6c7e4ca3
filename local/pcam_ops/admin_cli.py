"""`pcam lab …` and `pcam subscriber …`: who may read and drop what, each a group of operator commands."""

from __future__ import annotations

from pcam_ops import operator_commands
from pcam_ops.lab_admin import LAB_COMMANDS
from pcam_ops.subscribers import SUBSCRIBER_COMMANDS


def add_admin_groups(commands, operator_command, json_output) -> None:
    groups = (
        ("lab", "labs' own folders, and their IAM policies confined to them", LAB_COMMANDS, operator_commands.lab),
        ("subscriber", "other AWS accounts reading their labs' results, and getting their events",
         SUBSCRIBER_COMMANDS, operator_commands.subscriber),
    )  # fmt: skip
    for group, group_help, table, run in groups:
        parent = commands.add_parser(group, help=group_help).add_subparsers(dest=f"{group}_command", required=True)
        for name, (help_text, example) in table.items():
            command = operator_command(name, help_text, example, parent)
            if name == "list":
                json_output(command)
            elif group == "lab":
                command.add_argument("lab", help="the lab's name: lower-case letters, digits and '-', at most 32")
            else:
                command.add_argument("account", help="the subscriber's AWS account id (12 digits)")
            if (group, name) == ("lab", "add"):
                command.add_argument("--principal", default=None, help="an AWS account or role ARN of the lab")
                command.add_argument("--notify", default=None, metavar="EMAIL", help="mail the lab's own events here")
            if (group, name) == ("subscriber", "add"):
                command.add_argument("--labs", required=True, help="the labs whose results it reads (comma-separated)")
                command.add_argument(
                    "--bus", default=None, metavar="ARN",
                    help="an event bus of the subscriber's account: its labs' events are sent there",
                )  # fmt: skip
            command.set_defaults(run=run)
