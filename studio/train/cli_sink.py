"""A terminal sink: tqdm progress bar with loss and ETA, one line per other event."""

from __future__ import annotations

from tqdm import tqdm

from .. import events as ev


class TqdmSink:
    def __init__(self, total: int, initial: int = 0):
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def emit(self, e: ev.Event) -> None:
        if isinstance(e, ev.Progress):
            self.bar.n = e.step
            self.bar.set_postfix(loss=f"{e.loss:.4f}", lr=f"{e.lr:.2e}", refresh=False)
            self.bar.refresh()
        elif isinstance(e, ev.Validation):
            flag = " (best)" if e.best else ""
            self.bar.write(f"step {e.step}: validation loss {e.loss:.4f}{flag}")
        elif isinstance(e, ev.Judged):
            copy = " COPIES TRAINING PHOTOS" if e.copying else ""
            from ..judge.scorecard import shown

            self.bar.write(f"step {e.step}: style {shown(e.style, '.0f')} %, copy {shown(e.copy, '.2f')}, "
                           f"leak {shown(e.leak, '.0f')} %{copy}"
                           f" (recommended so far: step {e.recommended})")
        elif isinstance(e, ev.Recommended):
            self.bar.write(f"recommended: step {e.step} — {e.reason}")
        elif isinstance(e, ev.Sample):
            self.bar.write(f"step {e.step}: previews {', '.join(e.paths)}")
        elif isinstance(e, ev.Saved):
            self.bar.write(f"step {e.step}: saved {e.kind} {e.path}")
        elif isinstance(e, ev.Warning_):
            self.bar.write(f"step {e.step}: warning: {e.message}")
        elif isinstance(e, ev.Finished):
            self.bar.close()
            how = "stopped early, " if e.stopped_early else ""
            print(f"finished at step {e.step} ({how}{e.chosen} weights, {e.seconds:.0f}s): {e.adapter}")
        elif isinstance(e, ev.Failed):
            self.bar.close()
