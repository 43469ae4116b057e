"""Samplers by their AUTOMATIC1111 names, built from the model's own scheduler config.

``from_config`` keeps what the checkpoint says about its noise schedule (betas,
``prediction_type`` such as v-prediction for SD 2.x 768-v, timestep spacing); only the
solver and its sigma spacing change. Every switch sets its distinguishing options
explicitly, so a config that passed through another sampler never leaks into this one.
"""

from __future__ import annotations

from typing import Any

from ..errors import StudioError

# name -> (diffusers scheduler class name, options)
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler",
                        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler",
                 {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {"use_karras_sigmas": False}),
    # latents are not images: diffusers' DDIM clips its x0 guess to [-1, 1] unless told not to (a model
    # whose scheduler config never mentions clip_sample drew noise with DDIM), and SD's DDIM ends at
    # alphas_cumprod[0], not 1
    "DDIM": ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False}),
    "UniPC": ("UniPCMultistepScheduler", {"use_karras_sigmas": False}),
}
NAMES = tuple(SAMPLERS)


def check(name: str) -> str:
    """The canonical name for ``name`` (case and spacing forgiven), or a StudioError listing the choices."""
    norm = {" ".join(n.lower().split()): n for n in SAMPLERS}
    key = " ".join(str(name).lower().split())
    if key not in norm:
        raise StudioError(f"Unknown sampler {name!r}.", f"Use one of: {', '.join(NAMES)}.")
    return norm[key]


def build(name: str, base_config) -> Any:
    """A fresh scheduler of the named kind from ``base_config`` (the model's scheduler config)."""
    import diffusers

    cls_name, options = SAMPLERS[check(name)]
    cls = getattr(diffusers, cls_name)
    return cls.from_config(base_config, **options)
