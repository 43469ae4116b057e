"""Test-only: run the ``studio`` CLI and SIGKILL it at a chosen point (issue 11, kill -9).

    python tests/faults/killer.py PHASE N -- train --images DIR --name NAME ...
    python tests/faults/killer.py staging 1 -- import FILE     (or: export 1 -- export NAME)

PHASE picks what is counted; the process kills itself (SIGKILL: no cleanup, no finally,
no atexit) at the N-th occurrence. Writes are killed *after* the temp file/folder is
complete and *before* the rename that publishes it, the worst moment for an atomic writer.
Nothing here is product code: the wrapper patches functions in this process only.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import threading
from pathlib import Path

# what os.replace publishes for each kind of write (the destination path)
WRITES = {
    "ingest": r"/datasets/[^/]+/(images/[^/]+\.png|manifest\.json)$",
    "checkpoint": r"/checkpoints/step-\d+$",
    "preview": r"/samples/step-\d+-\d+\.png$",
    "best": r"/best\.safetensors$",
    "adapter": r"/adapters/([^/]+)/\1\.safetensors$",
    "adapter_json": r"/adapters/[^/]+/adapter\.json$",
    "staging": r"/adapters/\.staging-[^/]+/[^/]+\.safetensors$",  # an import/blend assembling its folder
    "export": r"/exports/[^/]+\.safetensors$",
}
PHASES = (*WRITES, "cache", "step", "prune", "time")


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def countdown(n: int):
    left = [n]

    def hit() -> bool:
        left[0] -= 1
        return left[0] == 0
    return hit


def arm(phase: str, n: float) -> None:
    if phase == "time":
        t = threading.Timer(n, die)
        t.daemon = True
        t.start()
        return
    hit = countdown(int(n))
    if phase in WRITES:
        pattern, real = re.compile(WRITES[phase]), os.replace

        def replace(src, dst, *a, **kw):
            if pattern.search(str(dst)) and hit():
                die()
            return real(src, dst, *a, **kw)
        os.replace = replace
    elif phase == "cache":  # the n-th image the VAE encodes into the latent cache
        from studio.train import batches

        real_encode = batches.encode
        batches.encode = lambda *a, **kw: die() if hit() else real_encode(*a, **kw)
    elif phase == "step":  # inside the n-th training micro-batch, before its backward
        from studio.train import loop

        real_loss = loop.Trainer._micro_loss
        loop.Trainer._micro_loss = lambda self, k: die() if hit() else real_loss(self, k)
    elif phase == "prune":  # half-way through deleting an old checkpoint
        real_rmtree = shutil.rmtree

        def rmtree(path, *a, **kw):
            p = Path(path)
            if re.search(r"step-\d+", p.name) and hit():
                files = sorted(f for f in p.rglob("*") if f.is_file())
                if files:
                    files[0].unlink()
                die()
            return real_rmtree(path, *a, **kw)
        shutil.rmtree = rmtree
    else:
        raise SystemExit(f"unknown phase {phase!r}; one of {', '.join(PHASES)}")


def main(argv: list[str]) -> int:
    sep = argv.index("--")
    phase, n = argv[0], float(argv[1])
    arm(phase, n)
    from studio.cli import main as studio_main

    return studio_main(argv[sep + 1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
