"""`pcam synth`, `pcam local run|up`, `pcam demo` and `pcam check`: commands on this machine, most of them on
the embedded local stack."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pcam_ops.exit_codes import PROBLEMS, USAGE
from pcam_ops.rendering import console, errors, print_summary, wait_with_progress


def synth(args) -> int:
    from pcam_synth.drops import synth_drop

    if any(mm < 0 for mm in args.lesion_mm or ()):
        errors.print("[red]--lesion-mm takes a diameter in mm: 0 (no lesion) or more[/red]")
        return USAGE
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
        lesions_mm=tuple(args.lesion_mm or ()),
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


def local_run(args) -> int:
    return _run_pipeline(Path(args.drop_dir), Path(args.out), args.port, args.timeout, args.transform_job_quota)


DEMO_MARK = ".made-by-pcam-demo"


DEMO_LESIONS_MM = (0, 0.1, 1, 4)  # one slide of each category: negative, isolated tumour cells, micro, macro


def demo(args) -> int:
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
    from pcam_ops.cli import build_parser  # here: the parser names this module's commands

    lesions = [part for mm in DEMO_LESIONS_MM for part in ("--lesion-mm", str(mm))]
    with console.status("synthesising a dataset, two slides and whole-slide images…"):
        synth(build_parser().parse_args(["synth", str(drop_dir), "--wsi", *lesions]))  # else synth's defaults
    code = _run_pipeline(drop_dir, Path(args.out), args.port, args.timeout, args.transform_job_quota)
    console.print(f"demo finished in {time.monotonic() - started:.0f} s")
    return code


def local_up(args) -> int:
    from pcam_local.local_stack import LocalStack
    from pcam_local.template import RuleFailed, check_rules, load_template, project_root

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


def check(args) -> int:
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
