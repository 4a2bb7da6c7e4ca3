"""Entrypoint of the slide staging job: SageMaker Processing, in the scikit-learn 1.4-2-py312 image (Python 3.12),
with no network (EnableNetworkIsolation).

Its code input holds this script, ``pcam_pipeline.zip`` (the domain library, pure Python: imported from the zip)
and ``wheels/`` (NumPy, Pillow, tifffile, OpenSlide for Python 3.12, staged with the code: installed with
``pip --no-index``, nothing downloaded). Without wheels (the local stack) the running Python's own packages serve.
Usage: stage_slide.py --base-dir /opt/ml/processing --request-file <wanted.json>; the job's own limits on
OpenSlide come from its environment (PCAM_CHILD_CPU_SECONDS, PCAM_CHILD_MEMORY_BYTES, PCAM_MAX_STAGING_GIGAPIXELS).
"""

import json
import os
import subprocess
import sys
from pathlib import Path


def install_wheels(code: Path, target: Path) -> None:
    wheels = sorted((code / "wheels").glob("*.whl"))
    if wheels:
        command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", "--target"]
        subprocess.run([*command, str(target), *map(str, wheels)], check=True)
        sys.path.insert(0, str(target))


def main(argv: list[str]) -> int:
    base = Path(argv[argv.index("--base-dir") + 1])
    request = json.loads(Path(argv[argv.index("--request-file") + 1]).read_text())
    request.update(cpu_seconds=int(os.environ["PCAM_CHILD_CPU_SECONDS"]),
                   memory_bytes=int(os.environ["PCAM_CHILD_MEMORY_BYTES"]),
                   max_staging_gigapixels=float(os.environ["PCAM_MAX_STAGING_GIGAPIXELS"]))  # fmt: skip
    code = base / "input" / "code"
    install_wheels(code, base / "work" / "site-packages")
    sys.path.insert(0, str(code / "pcam_pipeline.zip"))
    from pcam_pipeline.wsi.staging_run import stage_in_job

    answer = stage_in_job(base / "input" / "slide", base / "output", request)
    print(json.dumps({key: answer[key] for key in ("refused", "vendor", "mpp", "staged_bytes") if key in answer}))
    return 0


def failing_loudly(argv: list[str]) -> int:
    """A crash (not a refusal, which is an answer) says why in the job's ExitMessage: SageMaker reads it from
    /opt/ml/output/message (Developer Guide, "Save and Access Metadata Information About Your Processing Job")."""
    try:
        return main(argv)
    except Exception as exc:
        message = Path(argv[argv.index("--base-dir") + 1]).parent / "output" / "message"  # /opt/ml/output/message
        try:
            message.parent.mkdir(parents=True, exist_ok=True)
            message.write_text(f"{type(exc).__name__}: {exc}"[:1000])
        except OSError:
            pass
        raise


if __name__ == "__main__":
    sys.exit(failing_loudly(sys.argv))
