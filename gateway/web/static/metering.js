// Metered usage on the touchscreen: "So far: 23 min, 0.14 kWh, 18 g — €1.85" while a
// member works, and their session's total on the screen after they badge out.
// Kept apart from kiosk.js: it only reads GET /api/metering/usage and adds its own boxes.
"use strict";

(function () {
  const POLL_MS = 2000;
  const SHOW_TOTAL_MS = 60000;
  let activeSession = null;   // the session id seen running on this screen
  let totalUntil = 0;         // show the ended session's total until then
  let stopped = false;

  const style = document.createElement("style");
  style.textContent =
    ".usage-box{margin:8px 0;padding:10px 14px;border-radius:10px;background:#1d2a36;" +
    "color:#e8eef3;font-size:20px;line-height:1.3;min-height:48px;box-sizing:border-box}" +
    ".usage-box .usage-note{display:block;font-size:15px;color:#9fb0bf}";
  document.head.appendChild(style);

  function box(id, parent, before) {
    let el = document.getElementById(id);
    if (el || !parent) return el;
    el = document.createElement("div");
    el.id = id;
    el.className = "usage-box";
    el.setAttribute("role", "status");
    el.hidden = true;
    parent.insertBefore(el, before || null);
    return el;
  }

  function boxes() {
    const job = document.querySelector("#screen-job .job-info");
    const session = document.getElementById("screen-session");
    const locked = document.querySelector("#screen-locked .prompt");
    return {
      job: box("usage-job", job, document.getElementById("readings")),
      session: box("usage-session", session, session && session.querySelector(".screen-body")),
      total: box("usage-total", locked, null),
    };
  }

  function fill(el, text, note) {
    if (!el) return;
    el.textContent = text;
    if (note) {
      const n = document.createElement("span");
      n.className = "usage-note";
      n.textContent = note;
      el.appendChild(n);
    }
    el.hidden = false;
  }

  function render(u) {
    const b = boxes();
    const s = u.session;
    const note = (x) => (x && x.estimated ? "Part of the energy is estimated (meter gap)." : "");
    if (s) {
      activeSession = s.session_id;
      totalUntil = 0;
      fill(b.job, "So far: " + s.text, note(s));
      fill(b.session, "So far: " + s.text, note(s));
      if (b.total) b.total.hidden = true;
      return;
    }
    if (b.job) b.job.hidden = true;
    if (b.session) b.session.hidden = true;
    const last = u.last_session;
    if (activeSession && last && last.session_id === activeSession) {
      activeSession = null;
      totalUntil = Date.now() + SHOW_TOTAL_MS;
    }
    if (last && Date.now() < totalUntil) {
      fill(b.total, "Your session: " + last.text, note(last));
    } else if (b.total) {
      b.total.hidden = true;
    }
  }

  async function poll() {
    if (stopped) return;
    try {
      const r = await fetch("/api/metering/usage", { headers: { Accept: "application/json" } });
      if (r.status === 409 || r.status === 401 || r.status === 403) {
        stopped = true;  // no meter on this gateway, or not the touchscreen
        return;
      }
      if (r.ok) render(await r.json());
    } catch (e) {
      // The gateway is restarting; the next poll tries again.
    }
    setTimeout(poll, POLL_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", poll);
  else poll();
})();
