// The access policy on the touchscreen, kept apart from kiosk.js: the induction expiry
// warning at badge-in, "supervised by" and the supervisor-left countdown, the trainer's
// grant-level picker, and the next booking on the badge screen.  It reads
// /api/access/policy and follows the live stream /api/events.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const initialEl = $("initial");
  if (!initialEl || !JSON.parse(initialEl.textContent).kiosk) return;

  let P = null;            // the last /api/access/policy answer
  let notice = null;       // the expiry warning of the session now open
  let supervision = null;  // {message, until (ms) | null}
  let tick = 0;
  let windowTimer = 0;

  // -- elements, created here so the template needs only the script tag ------------------

  const style = document.createElement("style");
  style.textContent = `
    .policy-note { margin: 8px 0 0; }
    .policy-note.warn { background: #4a3a00; border: 2px solid var(--amber, #e0a800); }
    .policy-levels { display: flex; gap: 8px; align-items: center; margin: 8px 0 0; flex-wrap: wrap; }
    .policy-levels .label { font-size: 0.85rem; color: var(--muted, #9aa7b3); }
    .policy-levels .btn { min-height: 48px; min-width: 48px; }
    .policy-levels .btn.chosen { background: var(--blue, #2a6fd6); border-color: var(--blue, #2a6fd6); }
    .next-booking { font-size: 0.95rem; }
    .next-booking.now { background: #4a3a00; border: 2px solid var(--amber, #e0a800); }
  `;
  document.head.appendChild(style);

  function make(tag, cls, id) {
    const el = document.createElement(tag);
    el.className = cls;
    el.id = id;
    el.hidden = true;
    return el;
  }

  const sessionScreen = $("screen-session");
  const note = make("div", "banner info policy-note", "policy-note");
  const levels = make("div", "policy-levels", "grant-levels");
  const booking = make("div", "notice next-booking", "next-booking");
  if (sessionScreen) {
    const row = sessionScreen.querySelector(".row");
    (row ? row.after.bind(row) : sessionScreen.prepend.bind(sessionScreen))(note);
    note.after(levels);
  }
  const lockedPrompt = $("screen-locked") && $("screen-locked").querySelector(".prompt");
  if (lockedPrompt) lockedPrompt.appendChild(booking);

  // -- rendering -------------------------------------------------------------------------

  function pad(n) { return String(n).padStart(2, "0"); }
  function hm(iso) { const t = new Date(iso); return pad(t.getHours()) + ":" + pad(t.getMinutes()); }
  function sameDay(a, b) { return a.toDateString() === b.toDateString(); }

  function bookingText(b) {
    if (!b) return "";
    const start = new Date(b.start);
    if (b.in_force) return "Booked for " + b.member_name + " until " + hm(b.end) + ".";
    const day = sameDay(start, new Date()) ? "" : start.toLocaleDateString(undefined,
      { weekday: "short", day: "numeric", month: "short" }) + " ";
    return "Next booking: " + b.member_name + ", " + day + hm(b.start) + "\u2013" + hm(b.end) + ".";
  }

  function render() {
    const p = P || {};
    // Next booking, on the badge screen.
    const text = bookingText(p.next_booking);
    booking.textContent = text;
    booking.hidden = !text;
    booking.classList.toggle("now", !!(p.next_booking && p.next_booking.in_force));

    // The session's notes: supervision first (it can end the session), then expiry.
    const parts = [];
    let warn = false;
    if (supervision && supervision.until) {
      const left = Math.max(0, Math.round((supervision.until - Date.now()) / 1000));
      parts.push(supervision.message.replace(/ends in \d+ s/, "ends in " + left + " s"));
      warn = true;
    } else if (p.supervised && p.supervisor) {
      parts.push("Supervised by " + p.supervisor + ".");
    }
    if (notice) { parts.push(notice); warn = true; }
    // Someone else's booking: started (they may take over) or starting soon.
    if (p.booking_note) { parts.push(p.booking_note); warn = true; }
    note.textContent = parts.join(" ");
    note.hidden = parts.length === 0;
    note.classList.toggle("warn", warn);

    // The trainer's grant-level picker, while their induction window is open.
    const win = p.grant_window;
    levels.hidden = !win;
    if (win) {
      const chosen = win.level;
      const key = (p.levels || []).join(",") + "|" + chosen;
      if (levels.dataset.key !== key) {
        levels.dataset.key = key;
        levels.textContent = "";
        const label = document.createElement("span");
        label.className = "label";
        label.textContent = "Grant the next member:";
        levels.appendChild(label);
        for (const level of p.levels || []) {
          const b = document.createElement("button");
          b.type = "button";
          b.className = "btn small" + (level === chosen ? " chosen" : "");
          b.dataset.level = level;
          b.textContent = level;
          levels.appendChild(b);
        }
      }
    }
  }

  async function refresh() {
    try {
      const r = await fetch("/api/access/policy");
      if (!r.ok) return;
      P = await r.json();
      if (P.supervision_ends_in != null && !(supervision && supervision.until)) {
        supervision = { message: P.supervision_message || "", until: Date.now() + P.supervision_ends_in * 1000 };
      }
      if (P.notice && !notice) notice = P.notice;
      // The trainer's window closes by itself: look again when it should have.
      clearTimeout(windowTimer);
      if (P.grant_window) windowTimer = setTimeout(refresh, P.grant_window.seconds_left * 1000 + 500);
    } catch (err) {
      return;
    }
    render();
  }

  levels.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-level]");
    if (!b) return;
    const r = await fetch("/api/access/grant-level", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ level: b.dataset.level }),
    });
    if (r.ok) { P = (await r.json()).policy || P; render(); }
  });

  // -- live updates ------------------------------------------------------------------------

  const es = new EventSource("/api/events");
  const on = (name, fn) => es.addEventListener(name, (m) => { fn(JSON.parse(m.data)); refresh(); });
  on("session_started", (d) => { notice = d.notice || null; supervision = null; });
  on("session_ended", () => { notice = null; supervision = null; });
  on("supervision", (d) => {
    supervision = { message: d.message, until: d.ends_in != null ? Date.now() + d.ends_in * 1000 : null };
  });
  on("next_booking", () => {});
  on("access_state", () => {});

  clearInterval(tick);
  tick = setInterval(() => { if (supervision && supervision.until) render(); }, 1000);
  refresh();
})();
