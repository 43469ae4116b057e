"""One row per judged checkpoint, the recommended checkpoint (with its reason), the plateau rule.

Recommendation: among checkpoints that do not copy training photos, the earliest whose style
score is within ``delta`` points of the best one (more steps that add nothing only add risk:
overcooking, copying, leaking). Before the adapter is written those close calls are judged
again on more captions and the highest of that second look wins (:func:`close_calls`,
:func:`confirmed`): on a run's 3 captions an early round can land within the margin by chance.
Plateau (``stop=learned``): the last ``rounds`` rounds did not beat
the best score before them by more than ``delta`` points, once that best is at least
``MIN_LEARNED`` % — a style that has not started is not "learned".
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ..adapters.records import printable
from ..errors import StudioError

MIN_LEARNED = 50.0
FILE = "scorecard.json"
CLOSE_CALLS = 2  # judged again at most (the highest within the margin)


@dataclass(frozen=True)
class Row:
    step: int
    style: float  # % (nan: the meter cannot tell this style from the base model's images)
    copy: float  # nearest-training-photo distance relative to held-out photos (nan: unknown)
    leak: float  # % (nan as style)
    val_loss: float | None
    copying: bool
    adapter: str = ""  # this checkpoint's kept weights, relative to the adapter's folder ("" if not kept;
    # files written before 2026-12-05 hold an absolute path): only whether it is set counts (:func:`weights`)


@dataclass(frozen=True)
class Pick:
    step: int
    reason: str


def copies(copy: float, threshold: float) -> bool:
    return math.isfinite(copy) and copy < threshold


def recommend(rows: list[Row], delta: float) -> Pick | None:
    if not rows:
        return None
    clean = [r for r in rows if not r.copying]
    if not clean:
        first = min(rows, key=lambda r: r.step)
        return Pick(first.step, f"every checkpoint copies training photos (copy {first.copy:.2f}); "
                                "this is the earliest — train with more images or fewer steps")
    measured = [r for r in clean if math.isfinite(r.style)]
    if not measured:
        last = max(clean, key=lambda r: r.step)
        which = ("the last checkpoint" if last.step == max(r.step for r in rows) else
                 "the last checkpoint that does not copy its training photos")
        return Pick(last.step, "the style meter cannot tell this set's style from the base model's own images "
                               f"(their colours, contrast and texture already match the set's); {which} "
                               "— compare the previews by eye")
    best = max(measured, key=lambda r: r.style)
    if best.style < MIN_LEARNED:
        return Pick(best.step, f"highest style score ({best.style:.0f} %), but the style is not learned "
                               f"yet (below {MIN_LEARNED:.0f} %) — train longer or with a higher learning rate")
    pick = min((r for r in measured if r.style >= best.style - delta), key=lambda r: r.step)
    reason = (f"style {pick.style:.0f} %, within {delta:.0f} points of the best ({best.style:.0f} % at step "
              f"{best.step}) with the fewest steps" if pick is not best else
              f"highest style score ({best.style:.0f} %)")
    later_copy = [r for r in rows if r.copying and r.step > pick.step]
    if later_copy:
        reason += f"; from step {later_copy[0].step} the adapter copies its training photos"
    return Pick(pick.step, reason)


def close_calls(rows: list[Row], pick: Pick | None, delta: float, limit: int = CLOSE_CALLS) -> list[Row]:
    """The checkpoints a recommendation chose among: the clean, kept ones within ``delta`` points of
    the best (at most ``limit``, the highest: an earlier, lower one cannot win the second look, and each
    one judged again costs a draw), by step — empty when there is no learned pick to doubt
    or only one candidate. A round's few captions move its score by several points, so these are
    judged again on more captions before the pick is final (:func:`confirmed`)."""
    measured = [r for r in rows if not r.copying and math.isfinite(r.style) and r.adapter]
    if pick is None or not measured:
        return []
    best = max(r.style for r in measured)
    if best < MIN_LEARNED:
        return []
    close = sorted((r for r in measured if r.style >= best - delta), key=lambda r: -r.style)[:limit]
    return sorted(close, key=lambda r: r.step) if len(close) > 1 else []


def confirmed(rows: list[Row], scores: dict[int, float], captions: int, delta: float) -> Pick:
    """The pick among close calls (``scores``: step -> style % judged again on ``captions``
    captions): the highest second-look score (the earliest on a tie)."""
    step = max(sorted(scores), key=lambda k: scores[k])
    others = ", ".join(f"step {k}: {v:.0f} %" for k, v in sorted(scores.items()) if k != step)
    reason = (f"style {scores[step]:.0f} % on a second look with {captions} captions, the highest of the "
              f"checkpoints within {delta:.0f} points of the best on the run's meter ({others})")
    later_copy = [r for r in rows if r.copying and r.step > step]
    if later_copy:
        reason += f"; from step {later_copy[0].step} the adapter copies its training photos"
    return Pick(step, reason)


def learned(style: float) -> bool:
    return math.isfinite(style) and style >= MIN_LEARNED


def pick_label(style: float) -> str:
    """What the marked checkpoint is called: "recommended", or "best so far" while the style is not
    learned (below MIN_LEARNED): a newcomer read "recommended" on a 41 % checkpoint as "this one is
    good" (newcomer review, 2026-12-07)."""
    return "best so far" if math.isfinite(style) and not learned(style) else "recommended"


def leak_words(style: float, leak: float) -> str:
    """The leak meter of one checkpoint in plain words ("" when the style is not learned or unknown)."""
    if not (learned(style) and math.isfinite(leak)):
        return ""
    if leak < 0.25 * style:
        return (f"Without the trigger word it leaves images almost alone (leak {max(leak, 0):.0f} %): "
                "the style comes when you ask for it.")
    if leak < 0.5 * style:  # (not nearer 1: an adapter trained with no trigger word at all read 40 % at style
        # 60 %, the trigger-free prompts' base images starting nearer the style: benchmarks/RESULTS.md)
        return (f"Without the trigger word it still changes images part of the way (leak {leak:.0f} % against "
                f"style {style:.0f} %): write the trigger word for the full style.")
    return (f"It restyles images even without the trigger word (leak {leak:.0f} % against style "
            f"{style:.0f} %): fine for a look you always want; to keep it to the trigger word, add ordinary "
            "photos captioned without it to the set.")


def plateaued(rows: list[Row], rounds: int, delta: float) -> bool:
    if len(rows) <= rounds or not all(math.isfinite(r.style) for r in rows):
        return False  # (a style the meter cannot see never plateaus: the run goes to its steps)
    before = max(r.style for r in rows[:-rounds])
    return before >= MIN_LEARNED and all(r.style < before + delta for r in rows[-rounds:])


def save(folder: Path, rows: list[Row], pick: Pick | None, prompts: list[str] | None = None,
         second_look: dict[int, float] | None = None) -> Path:
    from ..paths import atomic_write_bytes

    path = Path(folder) / FILE
    known = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731 (strict JSON)
    data = {"rows": [{k: known(v) for k, v in asdict(r).items()} for r in rows],
            "recommended": asdict(pick) if pick else None, "prompts": list(prompts or []),
            "second_look": {str(k): known(v) for k, v in (second_look or {}).items()}}
    atomic_write_bytes(path, json.dumps(data, indent=1, allow_nan=False).encode())
    return path


MAX_BYTES = 4 << 20  # a run's scorecard is a few KB; a bigger file is not one of ours


def damaged(folder: Path, why: str) -> StudioError:
    return StudioError(f"The scorecard of this adapter ({Path(folder) / FILE}) is damaged: {why}.",
                       "Train the adapter again to judge it anew, or delete that file to drop its judged "
                       "checkpoints (the adapter itself is not affected).")


def _read(folder: Path) -> dict:
    path = Path(folder) / FILE
    if path.is_symlink() or not path.is_file():
        if path.is_symlink():
            raise damaged(folder, "it is a link, not a file the studio wrote")
        return {}
    try:
        if path.stat().st_size > MAX_BYTES:
            raise damaged(folder, f"it is larger than {MAX_BYTES >> 20} MB")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except RecursionError:
        raise damaged(folder, "it is nested too deeply to read") from None
    except (OSError, ValueError) as e:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise damaged(folder, f"it cannot be read ({type(e).__name__}: {printable(e, 120)})") from None
    if not isinstance(data, dict):
        raise damaged(folder, "it is not a JSON object")
    return data


def _get(d: dict, key: str, kinds, default=None):
    """``d[key]`` if it is of ``kinds`` (a bool is not a number), ``default`` when absent or null."""
    v = d.get(key)
    if v is None:
        return default
    if isinstance(v, bool) != (kinds is bool) or not isinstance(v, kinds):
        raise ValueError(f"{printable(key, 40)!r} is a JSON {type(v).__name__}")
    return v


def _row(d) -> Row:
    if not isinstance(d, dict):
        raise ValueError("a row is not an object")
    step = _get(d, "step", int)
    if step is None or step < 0:
        raise ValueError("a row has no step")
    num = lambda k: float(_get(d, k, (int, float), math.nan))  # noqa: E731 (null: unknown, as NaN)
    val = _get(d, "val_loss", (int, float))
    return Row(step, num("style"), num("copy"), num("leak"), None if val is None else float(val),
               _get(d, "copying", bool, False), _get(d, "adapter", str, ""))


def load(folder: Path) -> tuple[list[Row], Pick | None]:
    """The rows and the pick of ``folder``'s scorecard ([] and None when there is none). A file that
    is not the studio's own (damaged, cut short, edited) is a :class:`StudioError` naming it; the
    reason, which is shown on a terminal and a page, comes back printable."""
    data = _read(folder)
    try:
        rows = [_row(r) for r in _get(data, "rows", list, [])]
        pick = _get(data, "recommended", dict)
        if pick is not None and _get(pick, "step", int) is None:
            raise ValueError("the recommendation has no step")
        pick = Pick(pick["step"], printable(_get(pick, "reason", str, ""), 2000)) if pick is not None else None
    except ValueError as e:
        raise damaged(folder, str(e)) from None
    if len({r.step for r in rows}) != len(rows):
        raise damaged(folder, "a step is listed twice")
    return sorted(rows, key=lambda r: r.step), pick


def judged_weights(folder: Path, steps: int | None) -> Row | None:
    """The scorecard row of an adapter's written weights: the round at ``steps`` (the step they were
    trained for, adapter.json "steps"); with no step recorded, the marked checkpoint's. None when
    those weights were never judged (imported, trained without rounds, or a step between rounds:
    ``final=best`` at a validation step). A damaged scorecard: its StudioError."""
    rows, pick = load(folder)
    step = steps if steps is not None else (pick.step if pick else None)
    return next((r for r in rows if r.step == step), None)


def verdict_of(folder: Path, steps: int | None) -> str:
    """The style meter on an adapter's own weights in one line (the Library's details, the finished
    run); "" when they were never judged."""
    try:
        row = judged_weights(folder, steps)
    except StudioError as e:
        return e.what
    if row is None:
        return ""
    if not math.isfinite(row.style):
        return f"cannot tell this set's style from the base model's images (step {row.step}): judge it by eye"
    said = "learned" if learned(row.style) else f"not learned yet (learned from {MIN_LEARNED:.0f} %)"
    copy = "; it copies training photos" if row.copying else ""
    return f"{row.style:.0f} % at step {row.step} — {said}{copy}"


def weights(folder: Path, row: Row) -> Path | None:
    """The kept weights of ``row``: ``rounds/step-N.safetensors`` of ``folder`` (derived from the
    step, never from a stored path, so a renamed or moved adapter finds its own), a plain file;
    None when the round kept none or it is missing."""
    path = Path(folder) / "rounds" / f"step-{row.step:07d}.safetensors"
    return path if row.adapter and path.is_file() and not path.is_symlink() else None


def shown(v: float | None, fmt: str) -> str:
    """A figure as the CLI and the page print it: "-" when unknown (None or NaN)."""
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def table(rows: list[Row], pick: Pick | None) -> str:
    """Plain-text table (the CLI's output)."""
    lines = [f"{'step':>7}  {'style %':>7}  {'copy':>5}  {'leak %':>6}  {'val loss':>8}  note"]
    for r in rows:
        note = " ".join(x for x in ("COPIES TRAINING PHOTOS" if r.copying else "",
                                    f"<- {pick_label(r.style)}" if pick and pick.step == r.step else "") if x)
        val = f"{r.val_loss:.4f}" if r.val_loss is not None else "-"
        lines.append(f"{r.step:>7}  {shown(r.style, '.0f'):>7}  {shown(r.copy, '.2f'):>5}  {shown(r.leak, '.0f'):>6}  "
                     f"{val:>8}  {note}")
    if pick:
        chosen = next((r for r in rows if r.step == pick.step), None)
        lines.append(f"{pick_label(chosen.style if chosen else math.nan)}: step {pick.step} — {pick.reason}")
        words = leak_words(chosen.style, chosen.leak) if chosen else ""
        lines += [words] if words else []
    return "\n".join(lines)


def prompts_of(folder: Path) -> list[str]:
    """The judged prompts (captions, then trigger-free ones) of a trained adapter (texts only)."""
    prompts = _read(folder).get("prompts", [])
    return [p for p in prompts if isinstance(p, str)] if isinstance(prompts, list) else []
