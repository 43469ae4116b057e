"""The one exception type users see: what happened and what to do about it."""


class StudioError(Exception):
    """An error the user can act on. ``str(err)`` is shown as-is by the CLI and UI."""

    def __init__(self, what: str, fix: str | None = None):
        self.what, self.fix = what, fix
        super().__init__(what if not fix else f"{what} {fix}")
