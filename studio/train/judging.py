"""The trainer's style-meter rounds (``studio.judge``): previews that show the style, the
scorecard, the recommended checkpoint and the plateau rule of ``stop=learned``.

Each round draws the set's own captions (held-out first) and one or more without the trigger,
with the adapter being trained, and once with it switched off (the base model: the "before"
column), at the same seeds, through the generation engine. The round's weights are kept as
``rounds/step-N.safetensors`` so any judged checkpoint can become the adapter.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path

from .. import events as ev
from ..config import GenerateSettings, TrainSettings
from ..judge import scorecard
from ..judge.session import Drawn, Judge, from_dataset, preview_path, saved_afters
from ..paths import atomic_save_image
from ..schema import fill

log = logging.getLogger(__name__)


def make_judge(s: TrainSettings, manifest, data_root: Path, vae, res: int) -> Judge:
    return from_dataset(vae, manifest, data_root, res, s.judge_prompts, s.judge_free, s.sample_seed, s.copy_threshold)


def is_round(s: TrainSettings, step: int) -> bool:
    return bool(s.sample_every and step % s.sample_every == 0 or s.judge_first and step == s.judge_first)


@contextlib.contextmanager
def adapters_off(unet, text_encoders: list):
    """The base model: the LoRA being trained switched off (peft keeps its weights)."""
    mods = [m for m in [unet, *text_encoders] if getattr(m, "peft_config", None)]
    for m in mods:
        m.disable_adapters()
    try:
        yield
    finally:
        for m in mods:
            m.enable_adapters()


class Rounds:
    """Holds the judge, the scorecard rows and the pick across a run."""

    def __init__(self, trainer, judge: Judge):
        self.t, self.judge = trainer, judge
        self.rows: list[scorecard.Row] = []
        self.pick: scorecard.Pick | None = None
        self.stop_reason = ""
        self.seconds = 0.0  # spent drawing and judging (the meter's cost; benchmarks/style_meter.py)
        self.base_seconds = 0.0  # of which the base model's images (drawn once)
        self.confirm_seconds = 0.0  # of which the second look (final=recommended's close calls)
        self.last_preview = -1  # the step of the newest round drawn in this process
        self._engine = None

    def restore(self, upto: int) -> None:
        rows, _ = scorecard.load(self.t.out)
        self.rows = [r for r in rows if r.step <= upto]
        self.pick = scorecard.recommend(self.rows, self.t.s.plateau_delta)

    def _drawer(self):
        """``draw(prompts, seeds)`` with the adapter being trained, through the generation engine."""
        from ..generate import Engine

        t, s = self.t, self.t.s
        self._engine = self._engine or Engine(t.model)
        gs = GenerateSettings(seed=s.sample_seed, steps=s.sample_steps, width=t.res, height=t.res)
        batch = 8 if t.res <= 128 else 2

        def draw(prompts, seeds):
            with self.merged():
                return self._engine.generate_batch(gs, prompts, seeds, batch=batch)
        return draw

    @contextlib.contextmanager
    def drawing(self):
        """The whole pipeline on the device, the UNet in eval mode, for previews and meter rounds."""
        t = self.t
        t.unet.eval()
        for m in t.offloaded:
            m.to(t.device)
        try:
            yield
        finally:
            if t.device.type == "cuda":
                for m in t.offloaded:
                    m.to("cpu")
            t.unet.train()

    def merged(self):
        """Context for one draw: the adapter being trained merged into its base layers (restored
        exactly after; :mod:`studio.lora.merged`) on the CPU, where unmerged LoRA layers cost a third
        of a draw. Not on a GPU: the copy of the base weights would take VRAM the 8 GB presets do not
        have, and at 512 px the extra matmuls are a small share. Not on quantized base layers."""
        from ..lora.merged import merged

        t = self.t
        if t.device.type == "cpu" and t.s.quantize == "none":
            return merged([t.unet, *t.tes])
        return contextlib.nullcontext()

    def preview(self, step: int, record: bool = True) -> None:
        """A style-meter round (the set's captions beside the base model's images, judged into a
        scorecard row, its weights kept in ``rounds/``) plus any extra ``sample_prompts``."""
        from ..generate import Engine

        t, s = self.t, self.t.s
        t0, weights = time.perf_counter(), ""
        if record:
            weights = str(t._write_adapter(t._weights(), t.out / "rounds" / f"step-{step:07d}.safetensors", step))
        shown = []
        with self.drawing():
            after = self.draw()
            for i, (prompt, image) in enumerate(self.judge.pairs(after)):  # before|after
                path = preview_path(t.out, step, i)
                atomic_save_image(path, image)
                shown.append((prompt, str(path)))
            if record:
                self.record(step, after, weights)
            engine, n = self._engine or Engine(t.model), len(shown)
            for i, prompt in enumerate(fill(p, trigger=t.manifest.trigger) for p in s.sample_prompts):
                with self.merged():
                    r = engine.generate(GenerateSettings(prompt=prompt, seed=s.sample_seed, steps=s.sample_steps,
                                                         width=t.res, height=t.res))
                path = preview_path(t.out, step, n + i)
                atomic_save_image(path, r.image)
                shown.append((prompt, str(path)))
        self.seconds += time.perf_counter() - t0
        self.last_preview = step
        t._emit(ev.Sample(step, tuple(p for p, _ in shown), tuple(x for _, x in shown)))

    def draw(self) -> Drawn:
        t = self.t
        draw = self._drawer()
        if self.judge.before is None:
            t0 = time.perf_counter()
            with adapters_off(t.unet, t.tes):
                self.judge.set_before(self.judge.draw(draw))
            self.base_seconds += time.perf_counter() - t0
        return self.judge.draw(draw)

    def record(self, step: int, after: Drawn, weights_path: str) -> None:
        """Judge ``after`` as checkpoint ``step``: a scorecard row, the pick, events, the stop rule."""
        t = self.t
        val = t.validator.history[-1] if t.validator and t.validator.history else None
        kept = Path(weights_path).relative_to(t.out).as_posix() if weights_path else ""
        row = self.judge.row(step, after, val, kept)
        self.rows = [r for r in self.rows if r.step != step] + [row]
        self.pick = scorecard.recommend(self.rows, t.s.plateau_delta)
        scorecard.save(t.out, self.rows, self.pick, [*self.judge.prompts.styled, *self.judge.prompts.free])
        t._emit(ev.Judged(step, row.style, row.copy, row.leak, val, row.copying, weights_path,
                          self.pick.step if self.pick else -1, self.pick.reason if self.pick else ""))
        if len(self.rows) == 1 and math.isnan(row.style):
            t._emit(ev.Warning_(step, "the style meter cannot tell this set's style from the base model's own "
                                      "images (their colours, contrast and texture already match the set's): "
                                      "judge the previews by eye; stop=learned will not stop early"))
        if row.copying:
            t._emit(ev.Warning_(step, f"the adapter reproduces its training photos (copy {row.copy:.2f}, "
                                      f"below {t.s.copy_threshold}): use an earlier checkpoint, more images or "
                                      "fewer steps"))
        self._check_learned(step, row)

    def _check_learned(self, step: int, row: scorecard.Row) -> None:
        s = self.t.s
        if s.stop != "learned" or self.stop_reason:
            return
        if row.copying:
            self.stop_reason = "the adapter started copying its training photos"
        elif scorecard.plateaued(self.rows, s.plateau_rounds, s.plateau_delta):
            self.stop_reason = (f"the style score plateaued ({s.plateau_rounds} rounds without a gain of "
                                f"{s.plateau_delta:g} points)")
        if self.stop_reason:
            self.t._emit(ev.Warning_(step, f"stop=learned: {self.stop_reason}; stopping at step {step}"))

    def confirm(self) -> None:
        """final=recommended: judge the close calls again on ``judge_confirm`` captions (their kept
        weights loaded into the adapter being trained, its own weights restored after) and make the
        highest the pick. The captions the rounds already judged (the first ``judge_prompts``, same
        seeds) are not drawn again: the base images are the rounds' own and each close call's come
        from its saved previews; only the rest are drawn."""
        t, s = self.t, self.t.s
        close = [r for r in scorecard.close_calls(self.rows, self.pick, s.plateau_delta) if scorecard.weights(t.out, r)]
        if s.final != "recommended" or not s.judge_confirm or not close:
            return
        from safetensors.torch import load_file

        from ..lora import state as lora_state

        t0 = time.perf_counter()
        judge = from_dataset(self.judge.features.vae, t.manifest, t.data_root, t.res, s.judge_confirm, 0,
                             s.sample_seed, s.copy_threshold)
        p, draw = judge.prompts, self._drawer()
        k = self._shared(judge)

        def rest() -> list:
            return draw(list(p.styled[k:]), list(p.seeds[k:])) if k < len(p.styled) else []

        with adapters_off(t.unet, t.tes):
            judge.set_before(Drawn(self.judge.before.styled[:k] + rest(), []) if k else judge.draw(draw))
        current = t._weights()
        scores = {}
        try:
            for r in close:
                lora_state.load(t.unet, t.tes, load_file(scorecard.weights(t.out, r)))
                kept = self._kept(r.step, k)
                after = Drawn(kept + rest(), []) if kept is not None else judge.draw(draw)
                scores[r.step] = judge.row(r.step, after).style
        finally:
            lora_state.load(t.unet, t.tes, current)
        self.confirm_seconds = time.perf_counter() - t0
        self.seconds += self.confirm_seconds
        self.pick = scorecard.confirmed(self.rows, scores, len(p.styled), s.plateau_delta)
        scorecard.save(t.out, self.rows, self.pick, [*self.judge.prompts.styled, *self.judge.prompts.free], scores)
        t._emit(ev.Recommended(self.pick.step, self.pick.reason, tuple(sorted(scores.items()))))

    def _shared(self, other: Judge) -> int:
        """How many leading captions (with their seeds) ``other`` shares with the rounds' judge whose
        base images this process drew (0 after a resume that drew no round)."""
        if self.judge.before is None:
            return 0
        a, b = self.judge.prompts, other.prompts
        k = 0
        while k < min(len(a.styled), len(b.styled)) and (a.styled[k], a.seeds[k]) == (b.styled[k], b.seeds[k]):
            k += 1
        return k

    def _kept(self, step: int, k: int) -> list | None:
        """The adapter's images of the first ``k`` judged captions at round ``step``, from its saved
        previews; None when one is missing or unreadable (the second look then draws them)."""
        try:
            return saved_afters(self.t.out, step, k)
        except (OSError, ValueError):
            return None

    def pick_path(self) -> Path | None:
        if not self.pick:
            return None
        row = next((r for r in self.rows if r.step == self.pick.step), None)
        return scorecard.weights(self.t.out, row) if row else None
