"""What the Train tab shows for a run: pure functions from a RunSnapshot to HTML, plot data
and table rows (no Gradio event wiring here, no torch)."""

from __future__ import annotations

import html
import math
import time
from typing import Any

COLORS = {"training": "#2563eb", "validation": "#ea580c"}
LOSS_CAPTION = ("Blue: training images, orange: held-out images (a line from their second check; the latest "
                "value is in the card above). It jumps from step to step; watch the trend, and stop if orange "
                "climbs while blue keeps falling (overfitting).")
RUN_HEADERS = ["Run", "Adapter", "Image set", "Status", "Step", "Loss", "Started", "Note"]


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def clock(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "–"


def first_line(text: str, limit: int = 160) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _bar(fraction: float, failed: bool = False) -> str:
    pct = max(0.0, min(1.0, fraction)) * 100
    colour = ' style="background: var(--error-text-color, #b91c1c)"' if failed else ""
    return (f'<div class="progress" role="progressbar" aria-valuenow="{pct:.0f}" aria-valuemin="0" '
            f'aria-valuemax="100"><div{colour} style="width:{pct:.1f}%"></div></div>')


def status_sentence(snap: Any) -> str:
    """What happened to the run, in words a user acts on."""
    name = html.escape(snap.adapter)
    s = snap.status
    if s == "queued" and getattr(snap, "adapter_in_use", False):
        return (f"Waiting: the adapter <b>{name}</b> is in use right now (being trained, or changed, from "
                "another window or terminal). This run starts once that has ended.")
    if s == "queued":
        return f"Waiting for the {html.escape(snap.device)} (position {snap.queue_position} in the queue)."
    if s == "running":
        return "Stopping: saving a usable adapter…" if getattr(snap, "stopping", False) else "Training…"
    if s == "finished":
        return f"Finished. <b>{name}</b> is in the Library and the Generate tab." + meter_sentence(snap)
    if s == "stopped":
        return (f"Stopped at step {snap.step}; the adapter <b>{name}</b> saved so far is usable."
                + (" Press Resume to continue." if snap.can_resume else ""))
    if s == "failed":
        return f'<span class="status-error">Failed: {html.escape(snap.error or "the training process exited with an error")}</span>'
    if s == "interrupted":
        why = html.escape(snap.error or "the training process is gone")
        return (f'<span class="status-error">Interrupted: {why}.</span>'
                + (" Press Resume to continue from the last checkpoint." if snap.can_resume else ""))
    return html.escape(s)


def meter_sentence(snap: Any) -> str:
    """The style meter's verdict on the weights a finished run wrote, next to "Finished": a newcomer
    whose adapter had not learned the style read only "Finished" and went on to Generate (newcomer
    review, 2026-12-07). The same row the Library's details give (:func:`scorecard.verdict_of`)."""
    from pathlib import Path

    from ..adapters.records import Damaged, read_info
    from ..errors import StudioError
    from ..judge import scorecard as sc

    path = getattr(snap, "adapter_path", None)
    if not path:
        return ""
    folder = Path(path).parent
    try:
        steps = read_info(folder).get("steps")
        row = sc.judged_weights(folder, steps if isinstance(steps, int) and not isinstance(steps, bool) else None)
    except (Damaged, StudioError):  # a damaged record or scorecard: the Library says why; nothing here
        return ""
    if row is None or not math.isfinite(row.style):
        return ""
    copies = " It copies training photos: see the scorecard below." if row.copying else ""
    if not sc.learned(row.style):
        return (f" The style meter says the style is <b>not learned yet</b> ({row.style:.0f} % at step {row.step}, "
                f"learned from {sc.MIN_LEARNED:.0f} %): train longer, or add more pictures of the look — see "
                f"\"Is it learned?\" below.{copies}")
    return f" The style meter says the style is learned ({row.style:.0f} % at step {row.step}).{copies}"


def progress_html(snap: Any | None, queued: list | None = None, first_preview: int | None = None) -> str:
    if snap is None:
        return ('<div class="card" id="run-card"><b>No training yet.</b> <span class="muted">Pick an image set '
                'and press Start.</span></div>')
    total = snap.total or 0
    frac = snap.step / total if total else 0.0
    stats = [f"step <b>{snap.step}</b>/{total or '?'}"]
    if snap.loss is not None:
        stats.append(f"loss {snap.loss:.4f}")
    if snap.val_losses:  # one point draws no line yet: the number is here from the first check
        stats.append(f"held-out loss {snap.val_losses[-1][1]:.4f}")
    if snap.status == "running" and snap.it_per_s:
        stats += [f"{snap.it_per_s:.2f} it/s", f"ETA {duration(snap.eta_s)}"]
    elif snap.started and snap.ended:
        stats.append(f"took {duration(snap.ended - snap.started)}")
    return (f'<div class="card" id="run-card"><div><b>{html.escape(snap.adapter)}</b> '
            f'<span class="muted">from set {html.escape(snap.dataset)} · run {html.escape(snap.id)} · '
            f'{html.escape(snap.device)}</span></div>'
            f'<div id="run-status" data-status="{snap.status}">{status_sentence(snap)}</div>'
            f'{_bar(frac, snap.status == "failed")}<div id="run-stats">{" · ".join(stats)}</div>'
            f'{_preview_note(snap, first_preview)}{_queue_list(queued or [])}</div>')


def _preview_note(snap: Any, first: int | None) -> str:
    """While no preview exists yet: at which step (and about when) the first one comes."""
    if snap.status not in ("running", "queued") or snap.samples:
        return ""
    if first is None:
        return '<div class="muted" id="preview-note">Previews are off for this run.</div>'
    when = ""
    if snap.status == "running" and snap.it_per_s and snap.step < first:
        when = f", in about {duration((first - snap.step) / snap.it_per_s)}"
    return f'<div class="muted" id="preview-note">The first preview comes at step {first}{when}.</div>'


def _queue_list(queued: list) -> str:
    if not queued:
        return ""
    items = "".join(f"<li><b>{html.escape(r.adapter)}</b> from set {html.escape(r.dataset)} · "
                    f"position {r.queue_position}</li>" for r in sorted(queued, key=lambda r: r.queue_position or 0))
    return f'<div id="run-queue"><span class="muted">Waiting after this run:</span><ul>{items}</ul></div>'



def line_plot(rows: list[list[Any]], y: str, series: Any) -> dict | None:
    """Rows of ``[step, y, series name]`` as Gradio's line-plot data (columns + rows: no pandas
    needed). None while there is no point yet (an empty first value leaves Gradio's chart without
    its lines). Every name in ``series`` is in it from the first value on, an empty one as a gap
    (null): Gradio's chart keeps the series of the first value it drew, so a line that appears
    later (the held-out loss, from its first check) was never drawn in a page that watched the run."""
    if not rows:
        return None
    rows = rows + [[rows[0][0], None, name] for name in series if all(r[2] != name for r in rows)]
    return {"columns": ["step", y, "series"], "data": rows, "mark": "line",
            "datatypes": {"step": "quantitative", y: "quantitative", "series": "nominal"}}


def step_axis(snap: Any | None) -> list[int] | None:
    """The x axis of the run's charts: step 0 to the run's last planned step, so that the curves
    fill in as the run goes (a run that stops when learned ends short of the right edge) and the
    axis never counts in half steps (it did, fit to a run's first two or three points)."""
    if snap is None:
        return None
    last = max([snap.total, snap.step, *(s for s, _ in snap.losses), *(int(r["step"]) for r in snap.scorecard)])
    return [0, last] if last > 0 else None


def loss_plot(snap: Any | None) -> dict | None:
    """The loss curves: training and held-out."""
    rows: list[list[Any]] = []
    if snap is not None:
        rows += [[int(s), float(v), "training"] for s, v in snap.losses]
        rows += [[int(s), float(v), "validation"] for s, v in snap.val_losses]
    return line_plot(rows, "loss", COLORS)


def warnings_md(snap: Any | None) -> str:
    if snap is None or not snap.warnings:
        return ""
    return "**Warnings**\n\n" + "\n".join(f"- {w}" for w in snap.warnings[-8:])


def previews(snap: Any | None) -> list[tuple[str, str]]:
    if snap is None:
        return []
    return [(path, f"step {step}: {prompt}") for step, path, prompt in reversed(snap.samples)]


def run_rows(snaps: list[Any]) -> list[list[Any]]:
    rows = []
    for r in snaps:
        note = first_line(r.error) if r.status in ("failed", "interrupted") else \
            ("queue position %s" % r.queue_position if r.status == "queued" else "")
        rows.append([r.id, r.adapter, r.dataset, r.status, f"{r.step}/{r.total or '?'}",
                     "" if r.loss is None else f"{r.loss:.4f}", clock(r.started or r.created), note])
    return rows


def run_choice(r: Any) -> tuple[str, str]:
    return f"{r.adapter} · {r.status} · {r.id}", r.id


def signature(snap: Any | None, snaps: list[Any]) -> tuple:
    """Changes whenever anything the tab shows changes (the timer skips identical updates)."""
    def one(r):
        return (r.id, r.status, r.step, r.total, len(r.samples), len(r.warnings), len(r.val_losses),
                getattr(r, "stopping", False), r.queue_position, r.can_resume,
                getattr(r, "adapter_in_use", False))
    return (one(snap) if snap else None, tuple(one(r) for r in snaps))
