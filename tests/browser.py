"""A page rendered by a real browser: Debian's headless Chromium (installed by `make browser`), started as the
machine's closed network needs (no background connections, no first-run, a fresh profile)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--force-device-scale-factor=1",
)  # fmt: skip


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is missing: `make browser` installs Debian's package"
    return found


def render(page: Path, width: int = 1200, height: int = 2400) -> tuple[str, np.ndarray]:
    """The page's DOM after loading and a screenshot of it (RGB array)."""
    with tempfile.TemporaryDirectory() as profile:
        common = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        dom = subprocess.run(
            [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
        ).stdout
        shot = Path(profile) / "shot.png"
        subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
        return dom, np.asarray(Image.open(shot).convert("RGB"))
