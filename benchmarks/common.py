"""Shared benchmark plumbing: machine description and appending to RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "RESULTS.md"


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.split("Model name:")[1].split("\n")[0].strip()
    except Exception:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {gpu}"


def record(title: str, table: str) -> None:
    """Print a result table and append it to benchmarks/RESULTS.md with its command."""
    cmd = "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    block = (f"\n## {title}\n\n{datetime.date.today()} · `{cmd}` · {machine()}\n\n{table.strip()}\n")
    print(block)
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(block)


def solid_images(folder: Path, size: int, n: int = 4) -> Path:
    """``n`` plain colour PNGs of ``size``² (speed and memory do not depend on content)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (size, size), (40 * i, 120, 200)).save(folder / f"{i}.png")
    return folder
