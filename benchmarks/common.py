"""Shared benchmark plumbing: machine description and one section per benchmark in RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
import re
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


def record(title: str, table: str, note: str = "") -> None:
    """Print a result and write it as the section ``## title`` of benchmarks/RESULTS.md, with the
    date, the command and the machine: an existing section of that title is replaced in place
    (one section per benchmark), a new one goes at the end. ``note`` follows the header line."""
    cmd = "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    head = f"{datetime.date.today()} · `{cmd}` · {machine()}" + (f" · {note}" if note else "")
    block = f"## {title}\n\n{head}\n\n{table.strip()}\n"
    print(block)
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.is_file() else ""
    m = re.search(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", text, re.M | re.S)
    if m:
        rest = text[m.end():]
        text = text[:m.start()] + block + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(text, encoding="utf-8")


def solid_images(folder: Path, size: int, n: int = 4) -> Path:
    """``n`` plain colour PNGs of ``size``² (speed and memory do not depend on content)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (size, size), (40 * i, 120, 200)).save(folder / f"{i}.png")
    return folder
