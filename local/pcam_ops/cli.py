"""The `pcam` command line."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from pcam_local import TRANSFORM_QUOTA
from pcam_ops.rendering import console, errors, models_table, print_summary, smoke_costs_table, wait_with_progress
from pcam_ops.target import DEFAULT_CONFIG_FILE, DEFAULT_STACK, TargetError, resolve


def _synth(args) -> int:
    from pcam_synth.synth import synth_drop

    started = time.monotonic()
    written = synth_drop(
        Path(args.dir),
        dataset=args.dataset,
        train=args.train,
        valid=args.valid,
        test=args.test,
        slides=args.slides,
        slide_grid=(args.slide_rows, args.slide_cols),
        seed=args.seed,
        whole_slides=args.wsi,
    )
    console.print(f"wrote {len(written)} files under {args.dir} in {time.monotonic() - started:.1f} s")
    return 0


def _run_pipeline(drop_dir: Path, out_dir: Path, port: int | None, timeout: float, quota: int) -> int:
    from pcam_local.local_stack import LocalStack
    from pcam_ops.report import summarise, write_summary

    if not drop_dir.is_dir():
        errors.print(f"[red]{drop_dir} is not a folder[/red]")
        return USAGE
    out_dir.mkdir(parents=True, exist_ok=True)
    with LocalStack(port=port, work_dir=out_dir / ".local-stack", transform_job_quota=quota) as stack:
        console.print(f"local stack up at {stack.endpoint}, bucket s3://{stack.bucket}")
        started = time.monotonic()
        keys = stack.drop_directory(drop_dir)
        console.print(f"dropped {len(keys)} files under s3://{stack.bucket}/incoming/")
        idle = wait_with_progress(stack, timeout)
        elapsed = time.monotonic() - started
        stack.download_results(out_dir)
        dead_letters = {queue: len(messages) for queue, messages in stack.dead_letters().items()}
        summary = summarise(stack.records(), dead_letters, stack.pipeline_events())
        permissions = stack.iam_report()
    summary["problems"] += [f"{r['role']} may not: {denied}" for r in permissions for denied in r["denied"]]
    write_summary(summary, out_dir)
    print_summary(summary, elapsed, out_dir)
    calls = sum(r["calls"] for r in permissions)
    console.print(
        f"IAM: {calls} AWS calls by {len(permissions)} roles checked against their policies in template.yaml "
        f"({out_dir}/.local-stack/iam-report.json)"
    )
    if not idle:
        errors.print(f"[red]the pipeline was still busy after {timeout} s[/red]")
        return 1
    return 1 if summary["problems"] else 0


def _local_run(args) -> int:
    return _run_pipeline(Path(args.drop_dir), Path(args.out), args.port, args.timeout, args.transform_job_quota)


DEMO_MARK = ".made-by-pcam-demo"


def _demo(args) -> int:
    import shutil

    started = time.monotonic()
    drop_dir = Path(args.drop)
    for folder in (drop_dir, Path(args.out)):  # the demo's own folders start from nothing; no one else's is touched
        if folder.exists() and any(folder.iterdir()) and not (folder / DEMO_MARK).exists():
            errors.print(f"[red]{folder} holds files pcam demo did not make: choose another folder, or remove it[/red]")
            return USAGE
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / DEMO_MARK).write_text("pcam demo empties this folder at its next run\n")
    with console.status("synthesising a dataset, two slides and a whole-slide image…"):
        _synth(build_parser().parse_args(["synth", str(drop_dir), "--wsi"]))  # synth's defaults are the demo's
    code = _run_pipeline(drop_dir, Path(args.out), args.port, args.timeout, args.transform_job_quota)
    console.print(f"demo finished in {time.monotonic() - started:.0f} s")
    return code


def _local_up(args) -> int:
    from pcam_local.local_stack import LocalStack
    from pcam_local.stack import RuleFailed, check_rules, load_template, project_root

    malformed = [item for item in args.parameter if "=" not in item or not item.split("=", 1)[0]]
    if malformed:
        errors.print(
            f"[red]--parameter takes NAME=VALUE, e.g. PromotionMinimumAuc=0.5; not {', '.join(malformed)}[/red]"
        )
        return USAGE
    parameters = dict(item.split("=", 1) for item in args.parameter)
    template = load_template(project_root() / "template.yaml")
    unknown = sorted(set(parameters) - set(template["Parameters"]))
    try:
        if unknown:
            raise RuleFailed(f"template.yaml has no parameter {', '.join(unknown)}")
        check_rules(template, parameters)
    except RuleFailed as exc:
        errors.print(f"[red]{exc}[/red]")
        return USAGE
    with LocalStack(port=args.port, parameters=parameters, transform_job_quota=args.transform_job_quota) as stack:
        console.print(f"local stack running at [bold]{stack.endpoint}[/bold]")
        console.print(f"drop files into [bold]s3://{stack.bucket}/incoming/[/bold], for example:")
        # plain print: the command must stay copy-pasteable, unwrapped
        print(
            "  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1 "
            f"aws --endpoint-url {stack.endpoint} s3 cp my_slide.h5 s3://{stack.bucket}/incoming/slides/",
            flush=True,
        )
        console.print("operator commands (pcam models, promote, rollback) work against it with:")
        exports = " ".join(f"{k}={v}" for k, v in stack.environment().items())
        print(f"  export {exports}", flush=True)
        print("  pcam models --stack pcam-local", flush=True)
        console.print(f"logs: {stack.work_dir}/logs/   stop with Ctrl-C (or SIGTERM)")
        _wait_until_stopped()
        console.print("stopping")
    return 0


def _wait_until_stopped() -> None:
    """Until SIGINT or SIGTERM, whatever dispositions this process inherited (nohup and background jobs
    start with SIGINT ignored, where Python would never raise KeyboardInterrupt)."""
    import signal

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(timeout=1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# Exit codes: 0 done; 1 problems found, or a change refused (the message says why); 2 a usage error (argparse's
# own code); 3 the stack cannot be reached.
PROBLEMS, USAGE, UNREACHABLE = 1, 2, 3


def _operator_command(run):
    """An operator command against a deployed stack: errors go to stderr, as plain words, with an exit code."""

    def command(args) -> int:
        from pcam_ops.operations import StackNotFound, UnknownQueue, UnknownRule
        from pcam_pipeline.core.errors import InvalidInput
        from pcam_pipeline.models.promotion import PromotionError

        try:
            args.stack = resolve(args.stack, args.region, args.profile, args.config_env, args.config_file).stack
            return run(args)
        except TargetError as exc:
            errors.print(f"[red]{exc}[/red]")
            return USAGE
        except StackNotFound as exc:
            errors.print(f"[red]{exc}[/red]")
            return UNREACHABLE
        except (UnknownQueue, UnknownRule, InvalidInput) as exc:
            errors.print(f"[red]{exc}[/red]")
            return USAGE
        except PromotionError as exc:
            errors.print(f"[red]{exc}[/red]")
            return PROBLEMS

    return command


@_operator_command
def _models(args) -> int:
    from dataclasses import asdict

    from pcam_ops.operations import model_registry

    registry = model_registry(args.stack)
    models, current = registry.models(), registry.current()
    if args.json:
        document = {"current": current and asdict(current), "models": [asdict(m) for m in models]}
        print(json.dumps(document, indent=2, default=str))
        return 0
    console.print(models_table([asdict(m) for m in models], current and asdict(current)))
    if current:
        console.print(f"current: {current.model_name} since {current.promoted_at} by {current.promoted_by}")
    return 0


@_operator_command
def _change_current(args) -> int:
    from pcam_ops.operations import model_registry, who_is_calling

    registry = model_registry(args.stack)
    by = args.by or who_is_calling()
    if args.command == "promote":
        current = registry.promote(args.model, by, args.reason)
    else:
        current = registry.rollback(by, args.reason)
    console.print(f"current model is now [bold]{current.model_name}[/bold] ({current.reason}; by {by})")
    return 0


@_operator_command
def _rescore(args) -> int:
    from pcam_ops.operations import rescore, who_is_calling

    queued = rescore(args.stack, None if args.all else [args.slide], args.model, who_is_calling(), args.dry_run)
    if not queued:
        if args.slide:
            errors.print("[red]nothing queued: no such ready slide[/red]")
            return PROBLEMS
        console.print("no scored slide to rescore")
        return 0
    model = args.model or "the current model"
    if args.dry_run:
        console.print(f"would queue {len(queued)} slide(s) to be scored again with {model}: " + ", ".join(queued))
        return 0
    console.print(f"queued {len(queued)} slide(s) to be scored again with {model}; jobs start within a minute")
    return 0


@_operator_command
def _status(args) -> int:
    from pcam_ops.operations import DeployedStackView, concurrency_headroom, stack_parameters
    from pcam_ops.report import records_about, summarise

    view = DeployedStackView(args.stack)
    parameters = stack_parameters(args.stack)  # those left at their default are absent
    slots = int(parameters.get("MaxConcurrentTransformJobs") or TRANSFORM_QUOTA)
    max_patches = int(parameters.get("ScoringBatchMaxPatches") or 100_000)
    records = records_about(view.records(), file=args.file, slide=args.slide, since=args.since)
    # Dead letters belong to no one file or slide: they are reported when the whole deployment is.
    dead_letters = {} if args.file or args.slide else view.dead_letter_counts()
    summary = summarise(records, dead_letters, scoring=(slots, max_patches))
    headroom = None if args.file or args.slide else concurrency_headroom(args.stack)
    if headroom and headroom[0] > headroom[1]:
        summary["problems"].append(
            f"the queues' MaximumConcurrency settings add up to {headroom[0]}, more than the account's "
            f"{headroom[1]} unreserved Lambda concurrent executions: under load functions are throttled and wait "
            "for each other; ask AWS for a higher Lambda concurrency quota, or lower IngestMaxConcurrency, "
            "ConvertMaxConcurrency and SageMakerFlowMaxConcurrency"
        )
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary, None, None)
    return 1 if summary["problems"] else 0


@_operator_command
def _redrive(args) -> int:
    from pcam_ops.operations import DeployedStackView

    moved = DeployedStackView(args.stack).redrive(args.queue, args.dry_run)
    for queue, count in moved.items():
        done = "would move back" if args.dry_run else "moved back to the queue they came from"
        console.print(f"{queue}: {count} message(s) {done}")
    return 0


@_operator_command
def _replay(args) -> int:
    from datetime import UTC, datetime

    from pcam_ops.operations import replay
    from pcam_ops.report import parse_time

    since = parse_time(args.since)
    until = parse_time(args.until, "--until") if args.until else datetime.now(UTC)
    name, rules = replay(args.stack, since, until, args.rule)
    console.print(
        f"replay {name}: events of {since.isoformat()} to {until.isoformat()} sent again to {', '.join(rules)}"
    )
    return 0


@_operator_command
def _lab(args) -> int:
    from pcam_ops.operations import add_lab, stack_outputs
    from pcam_pipeline.core.labs import lab_policy

    if args.lab_command == "policy":
        outputs = stack_outputs(args.stack)
        bucket_arn = f"arn:aws:s3:::{outputs['DataBucketName']}"
        print(json.dumps(lab_policy(bucket_arn, args.lab, outputs.get("DataKeyArn", "")), indent=2))
        return 0
    added = add_lab(args.stack, args.lab, args.principal)
    for field, value in added.items():
        console.print(f"{field:>14}: {value}")
    return 0


@_operator_command
def _smoke(args) -> int:
    from pcam_ops.operations import stack_parameters
    from pcam_ops.smoke import PRICE_PER_HOUR, SmokeFailed, SmokeRun

    run = SmokeRun(args.stack, args.instance_type, args.epochs, args.timeout, say=console.print)
    console.print(
        f"smoke test of {args.stack}: dataset and slide [bold]{run.dataset}[/bold] in s3://{run.bucket}/incoming/"
    )
    code = 0
    try:
        run.run()
    except SmokeFailed as exc:
        errors.print(f"[red]smoke test failed: {exc}[/red]")
        code = 1
    costs = run.job_costs(stack_parameters(args.stack))
    console.print(smoke_costs_table(costs))
    known = [job["estimated_usd"] for job in costs if job["estimated_usd"] is not None]
    console.print(f"estimated total: ${sum(known):.4f} (prices known for {', '.join(sorted(PRICE_PER_HOUR))})")
    if args.clean:
        console.print(f"removed {run.clean()} objects the smoke test dropped or caused")
    return code


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


def _check(args) -> int:
    """Run ingestion's checks on local files; exit 1 if any would be quarantined."""
    from pcam_pipeline.core.errors import InvalidInput
    from pcam_pipeline.core.settings import IngestSettings
    from pcam_pipeline.ingestion.checks import check_upload

    if args.key and len(args.files) != 1:
        errors.print("[red]--as names the key of one file; check the others in another call[/red]")
        return USAGE
    unnamed = {
        name: "-" for name in ("DATA_BUCKET", "STATE_TABLE", "EVENT_BUS", "IDEMPOTENCY_TABLE", "CONVERT_QUEUE_URL")
    }
    settings = IngestSettings.from_env(unnamed)  # the template's defaults (limits, caps)
    folder = f"incoming/labs/{args.lab}/" if args.lab else "incoming/"
    folder += f"datasets/{args.dataset}/" if args.dataset else "slides/"
    refused = 0
    for name in args.files:
        path = Path(name)
        key = args.key or folder + path.name
        if not path.is_file():
            errors.print(f"[red]{name}: no such file[/red]")
            refused += 1
            continue
        try:
            with path.open("rb") as f:
                said = check_upload(key, f, path.stat().st_size, settings)
            print(f"ok: {name} as {key}: {said}", flush=True)  # unwrapped: one line per file, for grep
        except InvalidInput as problem:
            refused += 1
            print(f"would be quarantined: {name} as {key}: {problem.describe()}", flush=True)
    return PROBLEMS if refused else 0


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
    synth.set_defaults(run=_synth)

    local = commands.add_parser("local", help="the embedded local stack").add_subparsers(dest="local", required=True)
    run = local.add_parser(
        "run", help="run the pipeline on DROP_DIR and copy the results to OUT_DIR", formatter_class=DEFAULTS,
        epilog="example: pcam local run ./pcam-files --out ./results --timeout 3600",
    )  # fmt: skip
    run.add_argument("drop_dir")
    run.add_argument("--out", required=True)
    run.add_argument("--port", type=int, default=None)
    run.add_argument("--timeout", type=float, default=1800)
    run.set_defaults(run=_local_run)
    demo = commands.add_parser(
        "demo", help="the whole product on the local stack: synthesise, train, score", formatter_class=DEFAULTS,
        epilog="example: pcam demo --out pcam-output",
    )  # fmt: skip
    demo.add_argument("--drop", default="demo-drop", help="where the synthetic drop is written")
    demo.add_argument("--out", default="pcam-output", help="where the results are copied")
    demo.add_argument("--port", type=int, default=None)
    demo.add_argument("--timeout", type=float, default=1800)
    demo.set_defaults(run=_demo)
    up = local.add_parser(
        "up", help="keep the local stack running in the foreground", formatter_class=DEFAULTS,
        epilog="example: pcam local up --parameter PromotionMinimumAuc=0.5 --parameter RescoreOnPromotion=true",
    )  # fmt: skip
    up.add_argument("--port", type=int, default=None)
    up.add_argument(
        "--parameter", action="append", default=[], metavar="NAME=VALUE", help="a template parameter (repeatable)"
    )
    up.set_defaults(run=_local_up)
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
    check.set_defaults(run=_check)

    def operator_command(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        """A command against a deployed stack (AWS, or `pcam local up`): which one, where, as whom."""
        command = commands.add_parser(
            name, help=help_text, description=help_text, epilog=f"example: {example}", formatter_class=DEFAULTS
        )
        target = command.add_argument_group("which deployment (flags win over --config-env)")
        target.add_argument(
            "--stack", default=None, help=f"the stack's name (pcam-local for `pcam local up`; default: "
            f"--config-env's stack_name, else {DEFAULT_STACK})"
        )  # fmt: skip
        target.add_argument("--region", default=None, help="AWS region (default: --config-env's, else boto3's)")
        target.add_argument("--profile", default=None, help="AWS profile (default: --config-env's, else boto3's)")
        target.add_argument(
            "--config-env", default=None, metavar="ENV",
            help="read stack_name, region and profile from this environment of samconfig.toml, as `sam deploy "
            "--config-env ENV` does (default, staging, prod)",
        )  # fmt: skip
        target.add_argument("--config-file", default=DEFAULT_CONFIG_FILE, help="the SAM config file")
        return command

    models = operator_command(
        "models", "list models with their test-set metrics and which is current", "pcam models --config-env prod"
    )
    models.add_argument("--json", action="store_true", help="print JSON for scripts")
    models.set_defaults(run=_models)
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
        command.set_defaults(run=_change_current)
    rescore = operator_command(
        "rescore", "score slides again (after a better model), through the queue",
        "pcam rescore --all --dry-run --config-env prod",
    )  # fmt: skip
    which = rescore.add_mutually_exclusive_group(required=True)
    which.add_argument("--slide", help="one slide's id")
    which.add_argument("--all", action="store_true", help="every scored slide")
    rescore.add_argument("--model", default=None, help="a model from `pcam models` (default: the current one)")
    rescore.add_argument("--dry-run", action="store_true", help="list the slides that would be queued; queue none")
    rescore.set_defaults(run=_rescore)
    status = operator_command(
        "status", "every file, dataset, job, model and slide with its state, and the problems",
        "pcam status --slide labs/lab-a/s7 --json --config-env prod | jq .problems",
    )  # fmt: skip
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    about = status.add_mutually_exclusive_group()
    about.add_argument("--file", default=None, metavar="KEY", help="only this dropped file (its S3 key)")
    about.add_argument("--slide", default=None, metavar="ID", help="only this slide: its files, jobs and results")
    status.add_argument(
        "--since", default=None, metavar="TIME", help="only what changed since TIME (ISO 8601, e.g. 2026-12-01 or "
        "2026-12-01T09:00:00+00:00; UTC when no offset)"
    )  # fmt: skip
    status.set_defaults(run=_status)
    smoke = operator_command(
        "smoke", "check a fresh deployment end to end with a tiny synthetic dataset",
        "pcam smoke --config-env staging --clean",
    )  # fmt: skip
    smoke.add_argument("--instance-type", default="ml.g4dn.xlarge", help="training instance type (a GPU type)")
    smoke.add_argument("--epochs", type=int, default=2, help="training epochs")
    smoke.add_argument("--timeout", type=float, default=3600, help="seconds to wait for each step")
    smoke.add_argument("--clean", action="store_true", help="remove what the smoke test dropped and caused")
    smoke.set_defaults(run=_smoke)
    lab = commands.add_parser("lab", help="give a lab its own folders, and an IAM policy confined to them")
    lab_commands = lab.add_subparsers(dest="lab_command", required=True)
    commands, outer = lab_commands, commands  # operator_command adds to the lab's subcommands here
    add = operator_command(
        "add", "create the lab's IAM policy (and, with --principal, a role)",
        "pcam lab add lab-a --principal arn:aws:iam::210987654321:root --config-env prod",
    )  # fmt: skip
    add.add_argument("--principal", default=None, help="an AWS account or role ARN of the lab, to assume a role")
    show = operator_command(
        "policy", "print the lab's IAM policy (to manage it elsewhere)", "pcam lab policy lab-a --config-env prod"
    )
    commands = outer
    for command in (add, show):
        command.add_argument("lab", help="the lab's name: lower-case letters, digits and '-', at most 32")
        command.set_defaults(run=_lab)
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
    replay.set_defaults(run=_replay)
    redrive = operator_command(
        "redrive", "move dead-lettered messages back to their queues (after a fix)",
        "pcam redrive --queue Convert --dry-run --config-env prod",
    )  # fmt: skip
    redrive.add_argument("--queue", default=None, help="only the dead-letter queue whose name contains this")
    redrive.add_argument("--dry-run", action="store_true", help="count what would move; move nothing")
    redrive.set_defaults(run=_redrive)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
