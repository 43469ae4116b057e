"""What a user typed survives a page reload.

Gradio reloads every open page once its server comes back after a restart (its frontend polls
``reconnect`` and calls ``location.reload()``), and the page opened on the Images tab with every
field at its default: a prompt, the ticked styles, a half-typed adapter name were gone without a
word (newcomer review, 2026-12-08). :data:`JS_KEEP` keeps the typed fields listed in
:data:`KEPT_IDS`, the ticked styles and their weights (Generate) and the open tab in the browser
tab's ``sessionStorage`` as they change, and after a *reload* (never on a fresh visit: a new
browser tab has its own, empty storage) puts them back once the page has drawn them and says so.
Values go back through the element's own ``input``/``change`` events, as typing would, so
Gradio's state follows. Unsaved caption edits are not kept (the table is redrawn from disk).
"""

from __future__ import annotations

import json

# typed fields by elem_id: Generate's form and grid, Train's name and length, the Images tab's new
# set name and trigger word
KEPT_IDS = ("prompt", "negative", "seed", "steps", "guidance", "width", "height", "count", "grid-prompts",
            "grid-sets", "adapter-name", "set-steps", "set-new", "trigger", "te-separate")
TICKS = "lora-on-"  # Generate's style toggles (elem_id prefix) ...
WEIGHTS = ("lora-w-", "lora-te-")  # ... and their weights

JS_KEEP = """
() => {
  const KEY = "studio-kept", IDS = %(ids)s, TICKS = %(ticks)s, WEIGHTS = %(weights)s;
  const read = () => { try { return JSON.parse(sessionStorage.getItem(KEY) || "{}"); } catch (e) { return {}; } };
  const write = (k, v) => { const all = read(); all[k] = v; try { sessionStorage.setItem(KEY, JSON.stringify(all)); } catch (e) {} };
  const isKept = (id) => IDS.includes(id) || id.startsWith(TICKS) || WEIGHTS.some(p => id.startsWith(p));
  const keyOf = (el) => {  // the kept field an edited element belongs to (its nearest kept ancestor), or null
    for (let box = el.closest("[id]"); box; box = box.parentElement && box.parentElement.closest("[id]"))
      if (isKept(box.id)) return box.id;
    return null;
  };
  const valueOf = (el) => el.type === "checkbox" ? el.checked : el.value;
  const note = (ev) => {
    const el = ev.target;
    if (!(el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement) || el.type === "file") return;
    const k = keyOf(el);
    if (k) write("f:" + k, valueOf(el));
  };
  document.addEventListener("input", note, true);
  document.addEventListener("change", note, true);
  document.addEventListener("click", (ev) => {  // the open tab (the page's top row)
    const t = ev.target.closest && ev.target.closest("#tabs > .tab-wrapper [role=tab], #tabs [role=tablist] > [role=tab]");
    if (t && t.closest("#tabs") && !t.closest("#tabs .tabitem")) write("tab", t.textContent.trim());
  }, true);

  const nav = performance.getEntriesByType("navigation")[0];
  if (!nav || nav.type !== "reload") { try { sessionStorage.removeItem(KEY); } catch (e) {} return; }
  const kept = read();
  const fields = Object.keys(kept).filter(k => k.startsWith("f:"));
  if (!fields.length && !kept.tab) return;
  const put = (el, v) => {
    if (el.type === "checkbox") { if (el.checked !== !!v) el.click(); return; }
    const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
    Object.getOwnPropertyDescriptor(proto, "value").set.call(el, v);
    el.dispatchEvent(new Event("input", {bubbles: true}));
    el.dispatchEvent(new Event("change", {bubbles: true}));
    el.dispatchEvent(new Event("blur", {bubbles: true}));
  };
  const todo = new Set(fields);
  let tabDone = !kept.tab, said = false, tries = 0, observer = null;
  // a tab's fields are drawn when it is first opened, the style list when the library is read:
  // put each value back when its field appears (for ten minutes at most)
  const step = () => {
    tries += 1;
    if (!tabDone) {
      const tabs = [...document.querySelectorAll("#tabs [role=tab]")].filter(t => !t.closest("#tabs .tabitem"));
      const t = tabs.find(t => t.textContent.trim() === kept.tab);
      if (t) { t.click(); tabDone = true; }
    }
    for (const k of [...todo]) {
      const box = document.getElementById(k.slice(2));
      const el = box && box.querySelector("textarea, input[type=checkbox], input[type=number], input:not([type=range]):not([type=file])");
      if (!el) continue;
      // the prompt before the ticks: a tick sends the prompt to have its trigger word added (not twice)
      if (k.startsWith("f:" + TICKS) && todo.has("f:prompt")) continue;
      put(el, kept[k]);
      todo.delete(k);
    }
    if (!said) {
      said = true;
      const bar = document.createElement("div");
      bar.id = "kept-after-reload";
      bar.setAttribute("role", "status");
      bar.textContent = "The page reloaded: what you had typed and ticked is back.";
      bar.style.cssText = "position:fixed;bottom:12px;left:50%%;transform:translateX(-50%%);z-index:1000;" +
        "background:var(--background-fill-secondary,#f4f4f5);border:1px solid var(--border-color-primary,#ccc);" +
        "border-radius:6px;padding:8px 14px;font-size:14px;box-shadow:0 2px 8px rgba(0,0,0,.15)";
      document.body.appendChild(bar);
      setTimeout(() => bar.remove(), 12000);
    }
    if (!todo.size && tabDone && observer) observer.disconnect();
  };
  let queued = false;
  const soon = () => { if (!queued) { queued = true; setTimeout(() => { queued = false; step(); }, 150); } };
  const start = () => {
    observer = new MutationObserver(soon);
    observer.observe(document.body, {childList: true, subtree: true});
    setTimeout(() => observer.disconnect(), 600000);
    soon();
  };
  document.body ? start() : window.addEventListener("DOMContentLoaded", start);
}
"""


def js_keep() -> str:
    return JS_KEEP % {"ids": json.dumps(list(KEPT_IDS)), "ticks": json.dumps(TICKS), "weights": json.dumps(list(WEIGHTS))}
