"""The page's state: every list on the page (adapters, image sets) and every live view
(the header's job line, the Train tab's run) is filled from disk by ONE event.

Tabs register what they show with :meth:`PageState.follow` (something that depends on the
adapter and image-set lists) or :meth:`PageState.view` (anything else read from disk, with its
own change key). :meth:`PageState.wire` then runs one refresh when the page is opened, when a tab
is selected and when the server's fingerprint of the disk changes (:mod:`studio.ui.changes`:
the page asks for it every POLL_S seconds with one plain request). Each part keeps a key per
browser session and sends nothing when its key has not changed.

Why one event: Gradio checks a Dropdown's value against the choices *that session* knows on the
server. Choices typed at build time are the server's start-up lists; only a ``gr.update(choices=…)``
sent to the session makes a newer adapter a valid value. Filling every list on page load, from
the same function the timer uses, is what keeps a page opened later in step with the disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import gradio as gr

from .common import guard

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger(__name__)

POLL_S = 2.0  # how often an open page asks whether the disk changed (studio/ui/changes.py)


@dataclass(frozen=True)
class Lists:
    """What the lists on the page offer, read from disk."""
    adapters: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    triggers: dict[str, str] = field(default_factory=dict)  # adapter -> its trigger word ("" if none)
    live_dataset: str | None = None  # the image set of the running (else first queued) training
    key: tuple = ()  # changes whenever any of the above (or an adapter's files or a set's manifest) change


def dataset_names(services: "Services") -> list[str]:
    root = services.ws.datasets
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "manifest.json").is_file())


def _stat_key(folder) -> tuple:
    """Names and modification times of a folder's files (cheap: one stat each, no reads)."""
    try:
        return tuple((p.name, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file())
    except OSError:
        return ()


def read_lists(services: "Services", last: Lists | None = None) -> Lists:
    """The lists as they are on disk now; ``last`` itself when nothing changed (stat calls only:
    the adapters' records are read only when their files changed)."""
    lib = services.library
    adapters = tuple(lib.names())
    datasets = tuple(dataset_names(services))
    stamps = {d: _mtime(services.ws.datasets / d / "manifest.json") for d in datasets}
    live = _live_dataset(services)
    key = (tuple((n, _stat_key(lib.folder(n))) for n in adapters), tuple(stamps.items()), live)
    if last is not None and last.key == key:
        return last
    return Lists(adapters, datasets, triggers_of(lib, adapters), live, key)


def _mtime(path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def triggers_of(lib, names: Sequence[str]) -> dict[str, str]:
    """Each adapter's trigger word ("" if none or damaged)."""
    out = {}
    for n in names:
        try:
            out[n] = lib.get(n).trigger or ""
        except Exception:  # noqa: BLE001 - a damaged adapter still gets listed; the Library says why
            out[n] = ""
    return out


def _live_dataset(services: "Services") -> str | None:
    runner = services.runner
    if runner is None:
        return None
    live = [r for r in runner.runs() if r.status in ("running", "queued")]
    live.sort(key=lambda r: r.status != "running")
    return live[0].dataset if live else None


@dataclass
class _Part:
    fn: Callable  # (last key, *inputs) -> None (nothing changed) | (new key, *outputs)
    inputs: list
    outputs: list
    asked: bool = False  # a view drawn for its inputs: its key also records them (PageState.view)


class PageState:
    """Collects the page's refreshers while the tabs are built; :meth:`wire` connects them."""

    def __init__(self, services: "Services"):
        self.services = services
        self._parts: list[_Part] = []
        self._followers: list[_Part] = []

    def follow(self, outputs: list, fn: Callable, inputs: Sequence = ()) -> None:
        """``fn(lists, previous, *input values) -> updates for outputs`` runs whenever the lists
        change and when the page opens (``previous`` is None then: fill everything)."""
        self._followers.append(_Part(fn, list(inputs), list(outputs)))

    def view(self, outputs: list, fn: Callable, inputs: Sequence = ()) -> None:
        """``fn(last_key, *input values)`` returns None when nothing changed since ``last_key``,
        else ``(new_key, *updates for outputs)``; ``last_key`` is None when the view must be drawn.

        A view with inputs (a picker: which run to show) is drawn for the values its event sent,
        and an answer can land after the page moved on: a refresh that left naming run 1 answers
        after picking run 2 was drawn. So the view's key also records the values it was drawn for,
        and whenever the key or an input changes, :meth:`_verifier` compares the two and draws the
        view again for what the page asks now (nothing is sent when they agree). A tab never wires
        its own ``input.change`` to draw such a view."""
        self._parts.append(_Part(fn, list(inputs), list(outputs), asked=bool(inputs)))

    def wire(self, app: gr.Blocks, tabs: gr.Tabs) -> None:
        """One refresh on page load, on every tab switch, and whenever the server's fingerprint of
        the disk changes (the page asks for it every POLL_S seconds: studio/ui/changes.py)."""
        if self._followers:
            self._parts.insert(0, _Part(self._lists_part, [i for f in self._followers for i in f.inputs],
                                        [o for f in self._followers for o in f.outputs]))
        keys = [gr.State(None) for _ in self._parts]
        inputs = [*keys, *(i for p in self._parts for i in p.inputs)]
        outputs = [*keys, *(o for p in self._parts for o in p.outputs)]
        pickers = [o for o in outputs if isinstance(o, Picker)]
        plans = gr.JSON(visible=False, elem_id="page-plans")  # pick_update's replacements, per picker
        refresh = guard(self._refresher(len(keys), [outputs.index(o) for o in pickers]))
        # clicked by the page's poller (changes.JS_POLL) when the fingerprint changed; never shown
        trigger = gr.Button("Refresh", elem_id="page-refresh", elem_classes=["page-refresh"])
        # queued (not queue=False): only a queued event tells the browser which gr.State changed,
        # and the Generate tab's adapter list is drawn by @gr.render from one. No concurrency
        # limit: a refresh is a few stat calls and must not wait behind a drawing.
        kw = {"show_progress": "hidden", "concurrency_limit": None}
        for event in (app.load(refresh, inputs, [*outputs, plans], **kw),
                      tabs.select(refresh, inputs, [*outputs, plans], **kw),
                      trigger.click(refresh, inputs, [*outputs, plans], api_name="page_state", **kw)):
            # in the browser, against the values shown now (pick_update): no server round trip
            event.then(None, [plans, *pickers], pickers, js=JS_REPLACE, show_progress="hidden", queue=False)
        for key, part in zip(keys, self._parts):
            if part.asked:
                gr.on([key.change, *(i.change for i in part.inputs)], guard(self._verifier(part)),
                      [key, *part.inputs], [key, *part.outputs], trigger_mode="always_last", **kw)

    @staticmethod
    def _verifier(part: _Part) -> Callable:
        """Draws ``part`` again when what it shows was drawn for other input values than the page
        has now (see :meth:`view`); sends nothing when they agree."""
        def verify(key, *values):
            asked = tuple(values)
            if key is not None and tuple(key[0]) == asked:
                return (gr.skip(),) * (1 + len(part.outputs))
            out = _asked_key(part.fn(None, *values), asked)
            if out is None:
                return (gr.skip(),) * (1 + len(part.outputs))
            for u in out[1:]:
                if isinstance(u, dict):
                    u.pop(REPLACE, None)  # (a plan is the refresh's business; this draws for the value shown)
            return out
        return verify

    def _refresher(self, n: int, picker_at: list[int]) -> Callable:
        def refresh(*values):
            keys, rest = values[:n], list(values[n:])
            new_keys, updates = [], []
            for last, part in zip(keys, self._parts):
                args, rest = rest[:len(part.inputs)], rest[len(part.inputs):]
                if part.asked:  # the key it was drawn with counts only if drawn for these values
                    asked = tuple(args)
                    last = last[1] if last is not None and tuple(last[0]) == asked else None
                    out = _asked_key(part.fn(last, *args), asked)
                else:
                    out = part.fn(last, *args)
                if out is None:
                    new_keys.append(gr.skip())
                    updates += [gr.skip()] * len(part.outputs)
                else:
                    new_keys.append(out[0])
                    updates += list(out[1:])
            result = [*new_keys, *updates]
            plans = [_plan(result, i) for i in range(len(result))]  # (taken out of every output)
            plans = [plans[i] for i in picker_at]
            # always sent, empty ones too: a skipped update left the last refresh's plans in the
            # page, and the browser step after every refresh ran them again (a name deleted once,
            # made again and picked, was unpicked by the next refresh)
            return (*result, plans)
        return refresh

    def _lists_part(self, last, *values):
        lists = read_lists(self.services, last)
        if lists is last:
            return None
        out: list[Any] = []
        rest = list(values)
        for f in self._followers:
            args, rest = rest[:len(f.inputs)], rest[len(f.inputs):]
            got = f.fn(lists, last, *args)
            out += list(got) if isinstance(got, (tuple, list)) and len(f.outputs) > 1 else [got]
        return (lists, *out)


def _asked_key(out: tuple | None, asked: tuple) -> tuple | None:
    """``fn``'s answer with its key paired with the input values it was drawn for."""
    return None if out is None else ((asked, out[0]), *out[1:])


def _plan(result: list, i: int) -> dict | None:
    """Takes pick_update's replacement plan out of output ``i`` (Gradio must not see the key)."""
    u = result[i]
    return u.pop(REPLACE, None) if isinstance(u, dict) else None


class Picker(gr.Dropdown):
    """A dropdown of things on disk (adapters, image sets, runs). Its choices follow the page state,
    so a value the browser sends may name something renamed or deleted a moment ago (an event
    that left before the new choices arrived): it reaches the callback as None (dropped from a
    multiselect) instead of failing the event with Gradio's "is not in the list of choices".
    A value this session was never offered (a script calling the API, a page whose first refresh
    has not arrived) is checked against the disk itself when the picker has a source
    (:meth:`reads`), so the API takes every name that exists now."""
    is_template = True  # drawn by the browser as a plain Dropdown

    def reads(self, source: Callable[[], Sequence[str]]) -> "Picker":
        """``source()`` lists the names on disk now (kept off the config: not an __init__ argument)."""
        self._source = source
        return self

    def _known(self, value) -> bool:
        if value in [v for _, v in self.choices]:
            return True
        source = getattr(self, "_source", None)
        return source is not None and value in source()

    def preprocess(self, payload):
        offered = [v for _, v in self.choices]
        if isinstance(payload, list):
            kept = [v for v in payload if self._known(v)]
            return kept if any(v not in offered for v in kept) else super().preprocess(kept)
        if payload is None or payload in offered:
            return super().preprocess(payload)
        return payload if self._known(payload) else None  # on disk now: the callback checks it further


REPLACE = "__studio_replace__"  # key of a pick_update that asks the page to replace a value (see wire)


def pick_update(names: Sequence[str], current: Any, fallback: str | None = None, multiselect: bool = False):
    """New choices for a dropdown that a refresh follows. ``current`` is the value the page sent with
    the refresh; the answer never sets a value itself, because the page may show another by the time
    it arrives: the user picked one (adding photos to a new set selects it; CI run 23: the Images tab
    jumped back to the set shown before), or an action's answer set one (a rename selects the new
    name; a refresh sent a moment before it still carried the old, gone name and cleared the pick).
    A value that is gone (or none, when there is a ``fallback``) is replaced only if the page still
    shows it when the answer arrives: the update carries the plan (:data:`REPLACE`) and the page
    applies it in the browser (:meth:`PageState.wire`)."""
    names = list(names)
    if multiselect:
        drop = [v for v in (current or []) if v not in names]
        return gr.update(choices=names, **({REPLACE: {"drop": drop}} if drop else {}))
    if current in names:
        return gr.update(choices=names)
    to = fallback if fallback in names else None
    if to is None and current in (None, ""):
        return gr.update(choices=names)  # nothing shown, nothing to show: leave whatever the page shows now
    return gr.update(choices=names, **{REPLACE: {"gone": current, "to": to}})


# The plans of a refresh applied against what the page shows when its answer arrives.
JS_REPLACE = """
(plans, ...values) => values.map((v, i) => {
  const p = plans && plans[i];
  if (!p) return v;
  if (p.drop) return Array.isArray(v) ? v.filter(x => !p.drop.includes(x)) : v;
  const empty = x => x === null || x === undefined || x === "" || (Array.isArray(x) && !x.length);
  return (v === p.gone || (empty(v) && empty(p.gone))) ? p.to : v;
})
"""


def select_update(names: Sequence[str], value: str | None):
    """New choices and ``value`` selected (an action's own result, not a refresh: ``pick_update``)."""
    names = list(names)
    return gr.update(choices=names, value=value if value in names else None)
