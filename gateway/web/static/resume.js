// Resuming an interrupted job on the touchscreen.  Self-contained: it adds an offer
// to the session screen while that screen is shown ("Resume from layer K (Z=...)",
// with earlier layers to choose from), shows the preamble before anything runs, and
// resumes only when the member confirms.  The machine decides who sees the offer
// (the member who ran the job, badged in) and refuses a resume that is not safe.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const session = $("screen-session");
  const initial = JSON.parse($("initial").textContent);
  if (!session || !initial.kiosk) return;

  let offer = null;      // the interrupted job, as /api/jobs/interrupted returns it
  let plan = null;       // the preview being shown
  let busy = false;

  const call = (method, path, body) => window.GatewayApi.request(method, path, body);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function layerText(l) {
    return "layer " + l.layer + " (Z=" + Number(l.z).toFixed(2) + " mm)";
  }

  // -- the offer on the session screen -----------------------------------------------

  const panel = el("div", "resume-offer");
  panel.id = "resume-offer";
  panel.hidden = true;
  const body = session.querySelector(".screen-body");
  session.insertBefore(panel, body);

  function render() {
    panel.textContent = "";
    const i = offer && offer.interrupted;
    if (!i) { panel.hidden = true; return; }
    panel.hidden = false;
    const where = i.line != null
      ? "at line " + i.line + (i.lines_total ? " of " + i.lines_total : "") : "at an unknown line";
    panel.append(el("div", "resume-title", (i.file || "A job") + " was interrupted " + where + "."));
    if (!i.resumable) {
      panel.append(el("div", "resume-text", "It cannot be resumed: " + i.reason));
      const row = el("div", "resume-row");
      const drop = el("button", "btn small", "Dismiss");
      drop.type = "button";
      drop.id = "resume-discard";
      drop.addEventListener("click", discard);
      row.append(drop);
      panel.append(row);
      return;
    }
    panel.append(el("div", "resume-text",
      "Check the nozzle or tool has not moved and the part is still in place."));
    const row = el("div", "resume-row");
    const pick = el("select");
    pick.id = "resume-layer";
    pick.setAttribute("aria-label", "Layer to resume from");
    i.layers.forEach((l, n) => {
      const o = el("option", null, (n ? "Earlier: " : "") + layerText(l));
      o.value = String(l.layer);
      pick.append(o);
    });
    const go = el("button", "btn go", "Resume from " + layerText(i.layers[0]));
    go.type = "button";
    go.id = "resume-go";
    pick.addEventListener("change", () => {
      const l = i.layers.find((x) => String(x.layer) === pick.value);
      go.textContent = "Resume from " + layerText(l);
    });
    go.addEventListener("click", () => preview(Number(pick.value)));
    const drop = el("button", "btn small", "Discard");
    drop.type = "button";
    drop.id = "resume-discard";
    drop.addEventListener("click", discard);
    row.append(go, pick, drop);
    panel.append(row);
  }

  async function refresh() {
    if (session.hidden || busy) return;
    try {
      offer = await call("GET", "/api/jobs/interrupted");
    } catch (err) {
      offer = null;
    }
    render();
  }

  async function discard() {
    const i = offer && offer.interrupted;
    if (!i) return;
    try {
      await call("POST", "/api/jobs/interrupted/discard", { job_id: i.job_id });
      offer = null;
      render();
    } catch (err) {
      note(err.message);
    }
  }

  function note(text) {
    const t = $("toast");
    if (!t) return;
    t.textContent = text;
    t.hidden = false;
    setTimeout(() => { t.hidden = true; }, 7000);
  }

  // -- the preamble, shown before it runs --------------------------------------------

  const modal = el("div", "modal");
  modal.id = "resume-confirm";
  modal.hidden = true;
  const dialog = el("div", "dialog");
  dialog.setAttribute("role", "dialog");
  dialog.setAttribute("aria-modal", "true");
  const title = el("div", "title");
  const text = el("div", "body");
  const pre = el("pre", "resume-preamble");
  pre.id = "resume-preamble";
  const actions = el("div", "actions");
  const back = el("button", "btn big", "Back");
  back.type = "button";
  const yes = el("button", "btn big go", "Resume");
  yes.type = "button";
  yes.id = "resume-run";
  actions.append(back, yes);
  dialog.append(title, text, pre, actions);
  modal.append(dialog);
  document.body.append(modal);

  async function preview(layer) {
    const i = offer && offer.interrupted;
    if (!i) return;
    try {
      plan = await call("POST", "/api/jobs/interrupted/preview", { job_id: i.job_id, layer: layer });
    } catch (err) {
      note(err.message);
      return;
    }
    title.textContent = "Resume " + i.file + " from " + layerText(plan) + "?";
    text.textContent = "These commands run first, then the file from line " + plan.line + ":";
    pre.textContent = plan.preamble.join("\n");
    modal.hidden = false;
  }

  back.addEventListener("click", () => { modal.hidden = true; plan = null; });
  yes.addEventListener("click", async () => {
    const i = offer && offer.interrupted;
    if (!i || !plan || busy) return;
    busy = true;
    yes.disabled = true;
    try {
      await call("POST", "/api/jobs/interrupted/resume", { job_id: i.job_id, layer: plan.layer });
      offer = null;
      modal.hidden = true;
      render();
    } catch (err) {
      note(err.message);
    } finally {
      busy = false;
      yes.disabled = false;
    }
  });

  // Look again whenever the session screen appears (a member badged in), and now and
  // then while it is shown.
  new MutationObserver(refresh).observe(session, { attributes: true, attributeFilter: ["hidden"] });
  setInterval(refresh, 5000);
  refresh();
})();
