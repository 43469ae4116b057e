"""Judge any library adapter (trained here, imported or blended) against an image set."""

from __future__ import annotations

from ..config import GenerateSettings, TrainSettings
from ..data import manifest as mf
from ..generate.tags import LoraWeight
from ..paths import Workspace
from .scorecard import Row
from .session import from_dataset


def judge_adapter(engine, name: str, dataset: str, gs: GenerateSettings, count: int = 4, free: int = 1,
                  copy_threshold: float = TrainSettings.copy_threshold, ws: Workspace | None = None) -> Row:
    """One scorecard row: ``name`` at weight 1 against the base, on ``dataset``'s captions and images."""
    ws = ws or Workspace()
    m = mf.load(dataset, ws)
    rec = engine.library.get(name)
    res = gs.width or engine.model.resolution
    judge = from_dataset(engine.model.pipe.vae, m, mf.dataset_dir(dataset, ws), res, count, free, gs.seed,
                         copy_threshold)
    batch = 8 if res <= 128 else 2

    def drawer(loras):
        return lambda prompts, seeds: engine.generate_batch(gs, prompts, seeds, loras=loras, batch=batch)

    judge.set_before(judge.draw(drawer([])))
    after = judge.draw(drawer([LoraWeight(name)]))
    return judge.row(rec.steps or 0, after, None, str(rec.file))
