"""The services the page talks to, built once in :func:`studio.ui.app.launch`.

Every tab receives the same :class:`Services` and calls these objects; nothing in
``studio/ui`` touches torch or file formats directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import ModelSettings, ServeSettings
from ..paths import Workspace

if TYPE_CHECKING:  # the page never imports torch itself; these arrive built
    from ..adapters.library import Library
    from ..generate import Engine
    from ..jobs import JobRunner

log = logging.getLogger(__name__)


@dataclass
class Services:
    ws: Workspace
    engine: "Engine"
    runner: "JobRunner"
    library: "Library"
    model: ModelSettings
    serve: ServeSettings = field(default_factory=ServeSettings)
    gpu_memory: int = 0  # bytes of the training device's memory; 0 on a CPU

    @property
    def family(self) -> str:
        return self.engine.model.family

    @property
    def device(self) -> str:
        return str(self.engine.model.device)

    @property
    def dtype(self) -> str:
        return str(self.engine.model.dtype).replace("torch.", "")

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")


def build_services(model: ModelSettings, serve: ServeSettings | None = None, ws: Workspace | None = None,
                   **runner_kw: Any) -> Services:
    """Load the base model once and start the job runner (it re-attaches to live runs)."""
    from ..adapters.library import Library
    from ..generate import Engine
    from ..models.loading import load_model
    from ..train.preflight import device_memory

    ws = ws or Workspace()
    loaded = load_model(model.model, model.device, model.dtype)
    try:
        from ..jobs import JobRunner
    except ImportError:  # until the job runner lands: the page works without the Train tab's jobs
        log.warning("studio.jobs is missing: training from the page is off")
        runner = None
    else:
        runner = JobRunner(ws=ws, **runner_kw)
    library = Library(ws)  # one library: the engine resolves <lora:…> names in the same folder the tabs show
    return Services(ws=ws, engine=Engine(loaded, library=library), runner=runner, library=library, model=model,
                    serve=serve or ServeSettings(), gpu_memory=device_memory(loaded.device))
