"""The training loop. Takes settings, a loaded model and a dataset; reports only through
``sink.emit(event)``; stops when the stop token is set; returns a TrainResult.

Runs under ``accelerate`` so ``accelerate launch --multi_gpu -m studio train ...`` trains
data-parallel (each process takes different batches of one global sequence).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import events as ev
from ..adapters.library import check_name, write_pair
from ..config import TrainSettings
from ..data import manifest as mf
from ..data.dataset import AugmentSettings, ImageDataset
from ..errors import StudioError
from ..judge.session import preview_path
from ..lora import state as lora_state
from ..lora.inject import inject, lora_parameters
from ..models.loading import LoadedModel
from ..paths import Workspace, atomic_write_bytes
from . import checkpoint as ckpt
from . import recipe
from .batches import LatentBatches, encode
from .judging import Rounds, is_round, make_judge
from .loss import diffusion_loss, sample_noise, sample_timesteps, target
from .text import TextConditioner
from .validate import check_settings
from .validation import Validator, overfitting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    adapter: Path
    steps: int
    chosen: str
    stopped_early: bool
    best_val: float | None
    seconds: float


class NonFiniteLoss(StudioError):
    pass


class Trainer:
    def __init__(self, name: str, dataset: str, model: LoadedModel, settings: TrainSettings,
                 sink: ev.Sink, stop: ev.StopToken | None = None, ws: Workspace | None = None):
        check_name(name)
        self.name, self.model, self.s, self.sink = name, model, settings, sink
        self.stop = stop or ev.StopToken()
        self.ws = ws or Workspace()
        self.manifest = mf.load(dataset, self.ws)
        self.data_root = mf.dataset_dir(dataset, self.ws)
        self.out = self.ws.adapters / name
        # before any work (the CLI checked these before loading the model; the page may not have)
        check_settings(settings, model.family, self.manifest, model.device, model.size_multiple)

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, set_seed
        from diffusers import DDPMScheduler

        s, pipe = self.s, self.model.pipe
        self.base_hash = self.model.base_hash  # of the plain base weights: before LoRA or quantization
        set_seed(s.seed)  # LoRA init and dropout: same seed, same run
        # split_batches: every process draws its own batch and ``steps`` counts optimizer steps,
        # so the LR schedule advances once per step (not once per process).
        self.acc = Accelerator(mixed_precision=recipe.mixed_precision(s, self.model.device, self.model.dtype),
                               cpu=self.model.device.type == "cpu",
                               dataloader_config=DataLoaderConfiguration(split_batches=True))
        self.device = self.acc.device
        self.unet, self.tes = pipe.unet, [t for t in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if t]
        self.noise_sched = DDPMScheduler.from_config(pipe.scheduler.config)
        self._setup_data()  # caches first, while the UNet is off the GPU
        self._preflight()  # on the unquantized modules; the estimate applies s.quantize
        if s.quantize != "none":
            for m in [self.unet, *self.tes]:
                recipe.quantize_frozen(m, s.quantize, self.model.dtype)
        params = inject(self.unet, self.tes, s.lora)
        for p in params:
            p.data = p.data.float()  # LoRA weights train in fp32 whatever the base dtype
        if s.gradient_checkpointing:
            recipe.enable_checkpointing(self.unet, self.tes, s.lora.text_encoder)
        text_params = [p for te in self.tes for p in lora_parameters(te)]
        self.opt = recipe.make_optimizer(s, lora_parameters(self.unet), text_params)
        self.lr_sched = recipe.make_scheduler(s, self.opt)
        self.train_unet, self.opt, self.lr_sched = self.acc.prepare(self.unet, self.opt, self.lr_sched)
        # Steps and validation autocast explicitly. accelerate's own forward patch (fp32 outputs)
        # would stay on the pipeline's UNet and hand fp32 latents to a bf16/fp16 VAE in previews
        # and in generation after training; remove it.
        self.acc.unwrap_model(self.train_unet, keep_fp32_wrapper=False)
        self.params = params

    def _preflight(self) -> None:
        """Estimate peak VRAM before the first step; refuse runs that cannot fit."""
        from . import preflight

        pipe, s = self.model.pipe, self.s
        count = preflight.param_count
        est = preflight.estimate(self.model.family, s, count(self.unet), [count(t) for t in self.tes],
                                 count(pipe.vae), preflight.lora_param_count(self.unet, self.tes, s),
                                 self.model.dtype.itemsize, s.resolution or self.model.resolution)
        log.info("preflight: %s", est.format())
        if self.device.type == "cuda":
            budget = s.vram_budget_gb * preflight.GiB or torch.cuda.mem_get_info(self.device)[1]
            preflight.check(est, int(budget), self.model.family)

    def _setup_data(self) -> None:
        s, pipe = self.s, self.model.pipe
        res = self.res = s.resolution or self.model.resolution
        aug = AugmentSettings(res, self.model.size_multiple, s.random_crop, s.flip, s.repeats)
        self.dataset = ImageDataset(self.data_root, self.manifest.train, aug, seed=s.seed)
        if self.device.type == "cuda":
            self.unet.to("cpu")  # peak memory: VAE/text encoding must not sit on top of the UNet
        self.batches = LatentBatches(self.dataset, pipe.vae, s.batch_size, s.seed,
                                     cache=s.cache_latents and not s.random_crop,
                                     rank=self.acc.process_index, world=self.acc.num_processes)
        self.text = TextConditioner(pipe, self.model.family, s.lora.text_encoder, s.cache_text,
                                    s.caption_dropout, s.shuffle_tags, s.keep_tokens, s.seed, res)
        val_items = self.manifest.val if s.validate_every else []
        val_ds = ImageDataset(self.data_root, val_items, aug) if val_items else None
        val_lat = [encode(pipe.vae, val_ds.load(i)[None])[0].float().cpu() for i in range(len(val_items))]
        self.validator = Validator(val_lat, [i.caption for i in val_items], self.noise_sched, s.seed,
                                   pipe.vae_scale_factor)
        self.rounds = Rounds(self, make_judge(s, self.manifest, self.data_root, pipe.vae, res))
        if self.text.cache_on:  # every caption a step can see, encoded once
            self.text.warm([i.caption for i in self.manifest.items] + [""], self.device)
        self.offloaded = ([pipe.vae] if self.batches.cache_on else []) + (self.tes if self.text.cache_on else [])
        if self.device.type == "cuda" and self.offloaded:
            for m in self.offloaded:  # cached: free their memory for the UNet
                m.to("cpu")
            torch.cuda.empty_cache()
        self.unet.to(self.device)

    # ------------------------------------------------------------------ one step
    def _micro_loss(self, n: int) -> torch.Tensor:
        g = self.batches.global_index(n)
        latents, captions = self.batches.batch(n)
        latents = latents.to(self.device, self.unet.dtype)
        # noise, timesteps and caption augmentation are functions of (seed, global batch):
        # resume needs no generator state, and data-parallel processes draw different noise
        gen = torch.Generator().manual_seed(hash((self.s.seed, g)) & 0x7FFF_FFFF_FFFF_FFFF)
        noise = sample_noise(latents, gen, self.s.noise_offset)
        t = sample_timesteps(len(latents), self.noise_sched, gen, self.device)
        noisy = self.noise_sched.add_noise(latents, noise, t)
        h, w = latents.shape[-2:]
        f = self.model.pipe.vae_scale_factor
        cond = self.text(self.text.captions_for_step(captions, g), self.device, h * f, w * f)
        with self.acc.autocast():
            pred = self.train_unet(noisy, t, **cond).sample
        return diffusion_loss(pred, target(self.noise_sched, latents, noise, t), self.noise_sched, t,
                              self.s.min_snr_gamma)

    def _train_step(self, step: int) -> float:
        """One optimizer step over ``grad_accum`` micro-batches; NaN/Inf losses skip it."""
        total, last = 0.0, self.s.grad_accum - 1
        for k in range(self.s.grad_accum):
            loss = self._micro_loss(step * self.s.grad_accum + k)
            finite = self.acc.reduce(torch.isfinite(loss.detach()).float().reshape(1), "sum")
            if finite.item() < self.acc.num_processes:  # every process skips together
                self.opt.zero_grad(set_to_none=True)
                return math.nan
            with contextlib.nullcontext() if k == last else self.acc.no_sync(self.train_unet):
                self.acc.backward(loss / self.s.grad_accum)  # gradients averaged once, at the last
            total += loss.item() / self.s.grad_accum
        self._sync_text_grads()
        if self.s.max_grad_norm:
            self.acc.clip_grad_norm_(self.params, self.s.max_grad_norm)
        self.opt.step()
        self.lr_sched.step()
        self.opt.zero_grad(set_to_none=True)
        return total

    def _sync_text_grads(self) -> None:
        """The UNet is DDP-wrapped; the text encoders run inside ``encode_prompt`` (the
        generation path), so their LoRA gradients are averaged across processes here."""
        if self.acc.num_processes == 1:
            return
        for te in self.tes:
            for p in lora_parameters(te):
                if p.grad is not None:
                    p.grad = self.acc.reduce(p.grad, reduction="mean")

    # ------------------------------------------------------------------ outputs
    def _weights(self) -> dict:
        return lora_state.extract(self.unet, self.tes)

    def _adapter_metadata(self, steps: int) -> dict:
        from ..adapters import kohya

        res = self.s.resolution or self.model.resolution
        meta = kohya.metadata(self.model.family, self.name, asdict(self.s), steps, self.manifest.trigger, res)
        return {**meta, "studio_base_hash": self.base_hash}

    def _write_adapter(self, weights: dict, path: Path, steps: int) -> Path:
        from safetensors.torch import save

        atomic_write_bytes(path, save(weights, metadata=self._adapter_metadata(steps)))
        return path

    def _checkpoint(self, step: int) -> None:
        state = {"step": step, "optimizer": self.opt.state_dict(), "scheduler": self.lr_sched.state_dict(),
                 "rng": ckpt.rng_state(), "best_val": self.best_val, "val_history": self.validator.history,
                 "train_ema": self.train_ema}
        path = ckpt.save(self.out / "checkpoints", step, self._weights(), state, self.s.keep_checkpoints)
        self._emit(ev.Saved(step, str(path), "checkpoint"))

    def _resume(self) -> int:
        found = ckpt.list_checkpoints(self.out / "checkpoints")
        if not found:
            raise StudioError(f"Nothing to resume: {self.out / 'checkpoints'} has no checkpoint.",
                              "Start without --resume.")
        weights, state = ckpt.load(found[-1])
        lora_state.load(self.unet, self.tes, weights)
        self.opt.load_state_dict(state["optimizer"])
        self.lr_sched.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        self.best_val, self.train_ema = state["best_val"], list(state["train_ema"])
        self.validator.history = list(state["val_history"])
        log.info("resumed from %s", found[-1])
        return state["step"]

    # ------------------------------------------------------------------ the run
    def run(self, resume: bool = False, locked: bool = False) -> TrainResult:
        """``locked``: the caller holds the adapter folder's lock already (``studio train`` takes it
        before it loads the model); else the main process takes it here, before the set-up."""
        from accelerate import PartialState

        from ..adapters import busy

        t0 = time.perf_counter()
        # (cpu= as _setup's Accelerator: the first PartialState fixes the process-wide state)
        hold = not locked and PartialState(cpu=self.model.device.type == "cpu").is_main_process
        with busy.training(self.out) if hold else contextlib.nullcontext():
            self._setup()
            return self._run(resume, t0)

    def _run(self, resume: bool, t0: float) -> TrainResult:
        self.best_val, self.train_ema, bad = None, [], 0
        start = self._resume() if resume else 0
        if start:
            self.rounds.restore(start)
        self.unet.train()
        step, ema, t_loop = start, None, time.perf_counter()
        try:
            while step < self.s.steps and not self.stop.stopped and not self.rounds.stop_reason:
                loss = self._train_step(step)
                step += 1
                if math.isnan(loss):
                    bad = self._bad_step(step, bad)
                    continue
                bad = 0
                ema = loss if ema is None else 0.9 * ema + 0.1 * loss
                self._report(step, start, loss, t_loop)
                self._periodic(step, ema)
            return self._finish(step, start, t0)
        except NonFiniteLoss as e:
            self._emit(ev.Failed(step, str(e)))
            raise
        except Exception as e:
            err = self._failed(step, e)
            if err is e:
                raise
            raise err from e

    def _failed(self, step: int, e: Exception) -> Exception:
        """A failure after setup (a full disk, an unwritable preview, a bug): the checkpoints on
        disk are complete (written atomically), so say which one a resume continues from."""
        found = ckpt.list_checkpoints(self.out / "checkpoints")
        how = (f"The last good checkpoint is {found[-1].name} ({found[-1]}); after fixing this, run the "
               "same command with --resume (or press Resume) to continue from it." if found else
               "No checkpoint was written yet; after fixing this, run the same command again (without --resume).")
        self._emit(ev.Failed(step, f"{e} {how}"))
        if isinstance(e, StudioError):
            return StudioError(f"Training stopped at step {step}: {e.what}", f"{e.fix or ''} {how}".strip())
        if isinstance(e, OSError):  # the disk or the file system, not the model: the user can act on it
            where = f" ({e.filename})" if e.filename else ""
            return StudioError(f"Training stopped at step {step}: a file could not be written or read: "
                               f"{e.strerror or e}{where}.", f"Check the drive and its permissions. {how}")
        e.add_note(how)  # a bug: keep its traceback, add the way back
        return e

    def _emit(self, e: ev.Event) -> None:
        """Events come from the main process only (one progress stream per run)."""
        if self.acc.is_main_process:
            self.sink.emit(e)

    def _bad_step(self, step: int, bad: int) -> int:
        bad += 1
        self._emit(ev.Warning_(step, f"non-finite loss: step skipped ({bad} in a row)"))
        if bad >= self.s.max_bad_steps:
            raise NonFiniteLoss(
                f"Training stopped: the loss was NaN/Inf {bad} steps in a row (step {step}).",
                "Likely causes: learning rate too high, fp16 overflow (use bf16 or fp32), or a corrupt "
                "image in the dataset. The last good checkpoint is kept; resume with a lower learning rate.")
        return bad

    def _report(self, step: int, start: int, loss: float, t_loop: float) -> None:
        rate = (step - start) / max(1e-9, time.perf_counter() - t_loop)
        self._emit(ev.Progress(step, self.s.steps, loss, self.lr_sched.get_last_lr()[0], rate,
                                   (self.s.steps - step) / max(rate, 1e-9)))

    def _periodic(self, step: int, ema: float) -> None:
        s, main = self.s, self.acc.is_main_process
        if s.validate_every and self.validator and step % s.validate_every == 0:
            self.train_ema.append(ema)
            self.unet.eval()
            with self.acc.autocast():
                value = self.validator.loss(self.train_unet, self.text, self.device, self.model.dtype)
            self.unet.train()
            best = self.best_val is None or value < self.best_val
            if best:
                self.best_val = value
                if main:
                    self._write_adapter(self._weights(), self.out / "best.safetensors", step)
            over = overfitting(self.validator.history, self.train_ema)
            self._emit(ev.Validation(step, value, best, over))
            if over:
                self._emit(ev.Warning_(step, "validation loss is rising while training loss falls: "
                                                 "overfitting — consider fewer steps or final=best"))
        if main and is_round(s, step):
            self.rounds.preview(step)
        if s.stop == "learned" and is_round(s, step) and self.acc.num_processes > 1:  # every process stops
            flag = torch.tensor([1.0 if self.rounds.stop_reason else 0.0], device=self.device)
            if self.acc.reduce(flag, "sum").item() and not self.rounds.stop_reason:
                self.rounds.stop_reason = "the main process judged the style learned"
        if main and s.checkpoint_every and step % s.checkpoint_every == 0:
            self._checkpoint(step)

    def _chosen(self) -> tuple[str, Path | None]:
        """Which weights become the adapter: (name, file) — file None = the current weights."""
        if self.s.final == "best" and (self.out / "best.safetensors").is_file():
            return "best", self.out / "best.safetensors"
        if self.s.final == "recommended" and self.rounds.pick_path():
            return "recommended", self.rounds.pick_path()
        return "last", None

    def _finish(self, step: int, start: int, t0: float) -> TrainResult:
        stopped = step < self.s.steps and not self.rounds.stop_reason  # stop=learned ends a run: it finished
        path = self.out / f"{self.name}.safetensors"
        chosen = "last"
        if self.acc.is_main_process:
            if not self.s.checkpoint_every or step % self.s.checkpoint_every:
                self._checkpoint(step)
            if self.rounds.last_preview != step:
                self.rounds.preview(step)  # the last weights are judged too: the scorecard is complete
            with self.rounds.drawing():
                self.rounds.confirm()  # final=recommended: close calls judged again on more captions
            chosen, source = self._chosen()
            preview_step = held = step  # held: the steps the written weights were trained for
            if source is not None:
                from safetensors import safe_open
                from safetensors.torch import load_file

                lora_state.load(self.unet, self.tes, load_file(str(source)))
                if chosen == "recommended":
                    preview_step = held = self.rounds.pick.step
                elif chosen == "best":
                    with safe_open(str(source), "pt") as f:  # (written by _periodic: its step is in it)
                        found = str((f.metadata() or {}).get("ss_steps", ""))
                    held = int(found) if found.isdigit() and int(found) <= step else step
                    preview_step = held  # the best weights' before|after, under their own step (the
                    if not preview_path(self.out, held, 0).is_file():  # last round's stay the last's)
                        self.rounds.preview(held, record=False)
            first = preview_path(self.out, preview_step, 0)
            atomic_write_bytes(self.out / "preview.png", first.read_bytes())  # before|after: the card shows both
            from safetensors.torch import save

            # record first, naming the weights it describes (a copy taken meanwhile can tell them apart)
            write_pair(self.out, self.name, save(self._weights(), metadata=self._adapter_metadata(held)),
                       self._info(held, step, chosen, stopped))
        seconds = time.perf_counter() - t0
        self._emit(ev.Saved(step, str(path), "adapter"))
        self._emit(ev.Finished(step, str(path), chosen, stopped, seconds))
        return TrainResult(path, step, chosen, stopped, self.best_val, seconds)

    def _info(self, held: int, step: int, chosen: str, stopped: bool) -> dict:
        pick = self.rounds.pick
        # "steps": the steps the written weights were trained for (a recommended or best checkpoint's
        # own, not the run's last step: the Library would call step-150 weights "200 steps"); the run's too
        return {"name": self.name, "steps": held, "trained_steps": step, "chosen": chosen, "stopped_early": stopped,
                "best_val": self.best_val, "family": self.model.family, "base": self.model.ref.location,
                "base_hash": self.base_hash, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "source": "trained", "trigger": self.manifest.trigger, "settings": asdict(self.s),
                "recommended": {"step": pick.step, "reason": pick.reason} if pick else None,
                "stop_reason": self.rounds.stop_reason}
