// The dashboards' script (the watcher's and the pipelines runner's): plain JavaScript, no build.
// The page works without it (read-only, refreshed by <noscript> meta refresh); with it:
// - #live is refreshed from <body data-live> every 3 s while the tab is visible;
// - buttons with data-post POST there with the anti-cross-site header named by <body data-header>
//   (a cross-origin form cannot send it), after an optional data-confirm question;
// - forms with data-post are sent the same way (form-encoded); their answer's `key`, if any,
//   replaces the form's one-time key a few seconds later, so a double click reuses one key.
(function () {
  "use strict";
  const body = document.body;
  const header = body.dataset.header;
  const live = body.dataset.live;
  const flash = (ok, text) => {
    const el = document.getElementById("flash");
    if (!el) return;
    el.className = ok ? "ok" : "bad";
    el.textContent = text;
  };
  const answer = async (response) => {
    const text = await response.text();
    try {
      const json = JSON.parse(text);
      const pairs = Object.entries(json).map(([k, v]) => `${k.replace(/_/g, " ")}: ${v}`);
      return { ok: response.ok, json, text: json.message || json.error || pairs.join(", ") };
    } catch (_) {
      return { ok: response.ok, json: {}, text: text.trim() };
    }
  };
  const post = async (url, data) => {
    const headers = {};
    headers[header] = "1";
    const init = { method: "POST", headers, credentials: "same-origin" };
    if (data) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      init.body = new URLSearchParams(data).toString();
    }
    try {
      return await answer(await fetch(url, init));
    } catch (e) {
      return { ok: false, json: {}, text: "request failed: " + e };
    }
  };
  let refreshing = false;
  const refresh = async () => {
    const el = document.getElementById("live");
    if (!el || !live || refreshing) return;
    refreshing = true;
    try {
      const r = await fetch(live, { cache: "no-store", credentials: "same-origin" });
      if (r.ok) el.innerHTML = await r.text();
    } catch (_) {
      /* the next tick tries again */
    } finally {
      refreshing = false;
    }
  };
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-post]");
    if (!button) return;
    event.preventDefault();
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    const result = await post(button.dataset.post);
    flash(result.ok, result.text);
    refresh();
  });
  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form[data-post]");
    if (!form) return;
    event.preventDefault();
    const result = await post(form.dataset.post, new FormData(form));
    flash(result.ok, result.text);
    if (result.json.key && form.elements.key) {
      setTimeout(() => { form.elements.key.value = result.json.key; }, 3000);
    }
    refresh();
  });
  setInterval(() => {
    if (document.visibilityState === "visible") refresh();
  }, 3000);
})();
