"""The operator's commands against a deployed stack (`status`, `models`, `promote`, `rollback`, `rescore`,
`redrive`, `replay`, `lab`, `smoke`): each resolves its stack, and says what went wrong in plain words with an
exit code."""

from __future__ import annotations

import json

from pcam_local import TRANSFORM_QUOTA
from pcam_ops.exit_codes import PROBLEMS, UNREACHABLE, USAGE
from pcam_ops.rendering import console, errors, models_table, print_summary, smoke_costs_table
from pcam_ops.target import TargetError, resolve


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
def models(args) -> int:
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
def change_current(args) -> int:
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
def rescore(args) -> int:
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
def status(args) -> int:
    if args.lab:
        return lab_status_command(args)
    from pcam_ops.lab_admin import stale_labs
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
            f"the event sources' concurrency (queues' MaximumConcurrency, one per stream shard) adds up to "
            f"{headroom[0]}, more than the account's "
            f"{headroom[1]} unreserved Lambda concurrent executions: under load functions are throttled and wait "
            "for each other; ask AWS for a higher Lambda concurrency quota, or lower IngestMaxConcurrency, "
            "ConvertMaxConcurrency and SageMakerFlowMaxConcurrency"
        )
    if not (args.file or args.slide):
        stale = stale_labs(args.stack)
        summary["problems"] += [f"lab {lab}'s IAM policy is not this deployment's (after a change of "
                                f"BucketEncryption?): run `pcam lab update {lab}`" for lab in stale]  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary, None, None)
    return 1 if summary["problems"] else 0


def lab_status_command(args) -> int:
    from pcam_ops.lab_view import lab_status, lab_status_lines
    from pcam_ops.operations import stack_outputs

    bucket = args.bucket or stack_outputs(args.stack)["DataBucketName"]
    found = lab_status(bucket, args.lab, args.file or args.slide)
    if args.json:
        print(json.dumps(found, indent=2, default=str))
    else:
        print("\n".join(lab_status_lines(found)))
    problems = [d for d in found["items"].values() if d.get("stage") in ("quarantined", "failed", "scoring failed")]
    return 1 if problems else 0


@_operator_command
def redrive(args) -> int:
    from pcam_ops.operations import DeployedStackView

    moved = DeployedStackView(args.stack).redrive(args.queue, args.dry_run)
    for queue, count in moved.items():
        done = "would move back" if args.dry_run else "moved back to the queue they came from"
        console.print(f"{queue}: {count} message(s) {done}")
    return 0


@_operator_command
def replay(args) -> int:
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
def lab(args) -> int:
    from pcam_ops.lab_admin import LabAdmin

    admin = LabAdmin(args.stack)
    if args.lab_command == "policy":
        print(json.dumps(admin.document(args.lab), indent=2))
    elif args.lab_command == "list":
        labs = [access.to_json() for access in admin.list()]
        if args.json:
            print(json.dumps(labs, indent=2))
        for access in [] if args.json else labs:
            console.print(f"{access['lab']}: policy {access['policy']}; role {access['role_arn'] or 'none'}")
    elif args.lab_command == "update":
        changed = admin.update(args.lab)
        console.print(
            f"{args.lab}: " + ("policy updated to this deployment's" if changed else "policy already current")
        )
    elif args.lab_command == "remove":
        removed = admin.remove(args.lab)
        console.print(f"{args.lab}: policy {removed['policy_arn']} and role {removed['role'] or '(none)'} deleted; "
                      "its files and results stay in the bucket")  # fmt: skip
    else:
        for field, value in admin.add(args.lab, args.principal, args.notify).items():
            console.print(f"{field:>14}: {value}")
    return 0


@_operator_command
def subscriber(args) -> int:
    from pcam_ops.subscribers import SubscriberAdmin

    admin = SubscriberAdmin(args.stack)
    if args.subscriber_command == "list":
        found = [subscriber.to_json() for subscriber in admin.list()]
        if args.json:
            print(json.dumps(found, indent=2))
        for each in [] if args.json else found:
            console.print(f"{each['account']}: labs {', '.join(each['labs'])}; reads {each['read_as']}; "
                          f"events to {each['bus'] or '(none)'}")  # fmt: skip
    elif args.subscriber_command == "remove":
        admin.remove(args.account)
        console.print(f"{args.account}: access point, key grant and event rule removed; its copies stay its own")
    else:
        for field, value in admin.add(args.account, args.labs.split(","), args.bus).items():
            console.print(f"{field:>16}: {', '.join(value) if isinstance(value, list) else value}")
    return 0


@_operator_command
def smoke(args) -> int:
    import boto3

    from pcam_ops.operations import stack_parameters
    from pcam_ops.smoke import SmokeFailed, SmokeRun
    from pcam_ops.smoke_costs import price_note

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
    console.print(f"estimated total: ${sum(known):.4f} ({price_note(boto3.client('sts').meta.region_name)})")
    if args.clean:
        console.print(f"removed {run.clean()} objects the smoke test dropped or caused")
    return code
