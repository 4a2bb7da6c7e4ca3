"""The `pcam` command line: its arguments and help; the commands are `local_commands` (this machine, the local
stack) and `operator_commands` (a deployed stack), what they show is `rendering`."""

from __future__ import annotations

import argparse
import sys

from pcam_local import TRANSFORM_QUOTA
from pcam_ops import local_commands, operator_commands
from pcam_ops.exit_codes import PROBLEMS, UNREACHABLE, USAGE
from pcam_ops.target import DEFAULT_CONFIG_FILE, DEFAULT_STACK

__all__ = ["PROBLEMS", "UNREACHABLE", "USAGE", "build_parser", "main"]


class DEFAULTS(argparse.HelpFormatter):
    """Help that shows each option's default, unless it has none or its text already says it."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        if not action.option_strings or action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: {action.default})"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pcam-pipeline")
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pcam", description="PCam slide-scoring pipeline")
    parser.add_argument("--version", action="version", version=f"pcam {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser(
        "synth", help="write synthetic PCam-format data in the drop layout", formatter_class=DEFAULTS,
        epilog="example: pcam synth demo-drop --train 2000 --slides 2 --wsi",
    )  # fmt: skip
    synth.add_argument("dir")
    synth.add_argument("--dataset", default="synthetic")
    synth.add_argument("--train", type=int, default=2000)
    synth.add_argument("--valid", type=int, default=500)
    synth.add_argument("--test", type=int, default=500)
    synth.add_argument("--slides", type=int, default=2)
    synth.add_argument("--slide-rows", type=int, default=12)
    synth.add_argument("--slide-cols", type=int, default=16)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--wsi", type=int, nargs="?", const=1, default=0, metavar="N",
        help="also write N (default 1) pyramidal JPEG-tiled TIFF whole-slide images with µm/px, tissue, "
        "a tumour region and a pen mark, as slides/wsi-<n>.tif",
    )  # fmt: skip
    synth.add_argument(
        "--lesion-mm", type=float, action="append", metavar="MM",
        help="also write a whole-slide image with one round lesion MM mm across (slides/lesion-<MM>mm.tif; "
        "0: a tumour-free slides/no-lesion.tif); repeat for more slides",
    )  # fmt: skip
    synth.set_defaults(run=local_commands.synth)

    local = commands.add_parser("local", help="the embedded local stack").add_subparsers(dest="local", required=True)
    run = local.add_parser(
        "run", help="run the pipeline on DROP_DIR and copy the results to OUT_DIR", formatter_class=DEFAULTS,
        epilog="example: pcam local run ./pcam-files --out ./results --timeout 3600",
    )  # fmt: skip
    run.add_argument("drop_dir")
    run.add_argument("--out", required=True)
    run.add_argument("--port", type=int, default=None)
    run.add_argument("--timeout", type=float, default=1800)
    run.set_defaults(run=local_commands.local_run)
    demo = commands.add_parser(
        "demo", help="the whole product on the local stack: synthesise, train, score", formatter_class=DEFAULTS,
        epilog="example: pcam demo --out pcam-output",
    )  # fmt: skip
    demo.add_argument("--drop", default="demo-drop", help="where the synthetic drop is written")
    demo.add_argument("--out", default="pcam-output", help="where the results are copied")
    demo.add_argument("--port", type=int, default=None)
    demo.add_argument("--timeout", type=float, default=1800)
    demo.set_defaults(run=local_commands.demo)
    up = local.add_parser(
        "up", help="keep the local stack running in the foreground", formatter_class=DEFAULTS,
        epilog="example: pcam local up --parameter PromotionMinimumAuc=0.5 --parameter RescoreOnPromotion=true",
    )  # fmt: skip
    up.add_argument("--port", type=int, default=None)
    up.add_argument(
        "--parameter", action="append", default=[], metavar="NAME=VALUE", help="a template parameter (repeatable)"
    )
    up.set_defaults(run=local_commands.local_up)
    for command in (run, demo, up):
        command.add_argument(
            "--transform-job-quota",
            type=int,
            default=TRANSFORM_QUOTA,
            metavar="N",
            help="the local SageMaker's quota of transform instances (of one type) running at once; over it, "
            f"CreateTransformJob is refused with ResourceLimitExceeded as on AWS (default {TRANSFORM_QUOTA}, "
            "the template's MaxConcurrentTransformJobs default)",
        )

    check = commands.add_parser(
        "check", formatter_class=DEFAULTS,
        help="run ingestion's checks on local files before uploading them: what each would be taken as, or the "
        "reason it would be quarantined (the template's default limits)",
        epilog="example: pcam check scans/s7.svs scans/s7.json; pcam check --dataset pcam *_train_*.h5.gz",
    )  # fmt: skip
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument(
        "--dataset", default=None, help="check them as this dataset's files (incoming/datasets/NAME/); "
        "without it, as slides (incoming/slides/)"
    )  # fmt: skip
    check.add_argument("--lab", default=None, help="as this lab's drops (incoming/labs/LAB/…)")
    check.add_argument("--as", dest="key", default=None, metavar="KEY", help="the exact key one file would have")
    check.set_defaults(run=local_commands.check)

    def operator_command(name: str, help_text: str, example: str, parent=None) -> argparse.ArgumentParser:
        """A command against a deployed stack (AWS, or `pcam local up`): which one, where, as whom."""
        command = (parent or commands).add_parser(
            name, help=help_text, description=help_text, epilog=f"example: {example}", formatter_class=DEFAULTS
        )
        target = command.add_argument_group("which deployment (flags win over --config-env)")
        target.add_argument(
            "--stack", "--stack-name", dest="stack", default=None,
            help=f"the stack's name (pcam-local for `pcam local up`; default: --config-env's stack_name, else "
            f"{DEFAULT_STACK})",
        )  # fmt: skip
        target.add_argument("--region", default=None, help="AWS region (default: --config-env's, else boto3's)")
        target.add_argument("--profile", default=None, help="AWS profile (default: --config-env's, else boto3's)")
        target.add_argument(
            "--config-env", default=None, metavar="ENV",
            help="read stack_name, region and profile from this environment of samconfig.toml, as `sam deploy "
            "--config-env ENV` does (default, staging, prod)",
        )  # fmt: skip
        target.add_argument("--config-file", default=DEFAULT_CONFIG_FILE, help="the SAM config file")
        command.add_argument("--debug", action="store_true", help="log every AWS request and response (botocore)")
        return command

    def json_output(command: argparse.ArgumentParser) -> None:
        """`--json`, or `--output json` as the AWS CLI says it."""
        command.add_argument("--json", action="store_true", help="print JSON for scripts")
        command.add_argument("--output", choices=("text", "json"), default="text", help="json: as --json")

    models = operator_command(
        "models", "list models with their test-set metrics and which is current", "pcam models --config-env prod"
    )
    json_output(models)
    models.set_defaults(run=operator_commands.models)
    promote = operator_command(
        "promote", "make MODEL the current model by hand (recorded)",
        'pcam promote pcam-2026-12-01-1200-ab12 --reason "better recall on lab B" --config-env prod',
    )  # fmt: skip
    promote.add_argument("model")
    rollback = operator_command(
        "rollback", "go back to the model that was current before this one",
        'pcam rollback --reason "false positives on lab A" --config-env prod',
    )  # fmt: skip
    for command in (promote, rollback):
        command.add_argument("--reason", default="", help="why, kept in the promotion history")
        command.add_argument("--by", default="", help="who decided (default: your AWS identity)")
        command.set_defaults(run=operator_commands.change_current)
    rescore = operator_command(
        "rescore", "score slides again (after a better model), through the queue",
        "pcam rescore --all --dry-run --config-env prod",
    )  # fmt: skip
    which = rescore.add_mutually_exclusive_group(required=True)
    which.add_argument("--slide", help="one slide's id")
    which.add_argument("--all", action="store_true", help="every scored slide")
    rescore.add_argument("--model", default=None, help="a model from `pcam models` (default: the current one)")
    rescore.add_argument("--dry-run", action="store_true", help="list the slides that would be queued; queue none")
    rescore.set_defaults(run=operator_commands.rescore)
    status = operator_command(
        "status", "every file, dataset, job, model and slide with its state, and the problems",
        "pcam status --slide labs/lab-a/s7 --json --config-env prod | jq .problems",
    )  # fmt: skip
    json_output(status)
    about = status.add_mutually_exclusive_group()
    status.add_argument("--lab", default=None, help="what this lab sees, with the lab's own credentials")
    status.add_argument("--bucket", default=None, help="for --lab: the data bucket (then no stack is read)")
    about.add_argument("--file", default=None, metavar="KEY", help="only this dropped file (its S3 key)")
    about.add_argument("--slide", default=None, metavar="ID", help="only this slide: its files, jobs and results")
    status.add_argument(
        "--since", default=None, metavar="TIME", help="only what changed since TIME (ISO 8601, e.g. 2026-12-01 or "
        "2026-12-01T09:00:00+00:00; UTC when no offset)"
    )  # fmt: skip
    status.set_defaults(run=operator_commands.status)
    smoke = operator_command(
        "smoke", "check a fresh deployment end to end with a tiny synthetic dataset",
        "pcam smoke --config-env staging --clean",
    )  # fmt: skip
    smoke.add_argument("--instance-type", default="ml.g4dn.xlarge", help="training instance type (a GPU type)")
    smoke.add_argument("--epochs", type=int, default=2, help="training epochs")
    smoke.add_argument("--timeout", type=float, default=3600, help="seconds to wait for each step")
    smoke.add_argument("--clean", action="store_true", help="remove what the smoke test dropped and caused")
    smoke.set_defaults(run=operator_commands.smoke)
    from pcam_ops.admin_cli import add_admin_groups

    add_admin_groups(commands, operator_command, json_output)
    replay = operator_command(
        "replay", "send the pipeline's archived events of a time window again to the consumers' rules on its bus",
        "pcam replay --since 2026-12-01T00:00Z --until 2026-12-02T00:00Z --rule lims-slide-scored --config-env prod",
    )  # fmt: skip
    replay.add_argument("--since", required=True, metavar="TIME", help="from (ISO 8601; UTC when no offset)")
    replay.add_argument("--until", default=None, metavar="TIME", help="to (ISO 8601; default: now)")
    replay.add_argument(
        "--rule", default=None, help="only this rule (name or ARN; default: every rule on the bus that is not the "
        "pipeline's own)"
    )  # fmt: skip
    replay.set_defaults(run=operator_commands.replay)
    redrive = operator_command(
        "redrive", "move dead-lettered messages back to their queues (after a fix)",
        "pcam redrive --queue Convert --dry-run --config-env prod",
    )  # fmt: skip
    redrive.add_argument("--queue", default=None, help="only the dead-letter queue whose name contains this")
    redrive.add_argument("--dry-run", action="store_true", help="count what would move; move nothing")
    redrive.set_defaults(run=operator_commands.redrive)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "output", "text") == "json":
        args.json = True
    if getattr(args, "debug", False):
        import logging

        import boto3

        boto3.set_stream_logger("botocore", logging.DEBUG)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
