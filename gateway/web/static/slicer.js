// Slicer uploads on the touchscreen: jobs held for their member ("held for Ada L."),
// the badged-in member's held jobs with their analysis and one "Bed is clear — start"
// button, "My slicer key", approving a slicer's pairing request, and USB stick files.
// Kept apart from kiosk.js; it reads the screen kiosk.js shows and the slicer API.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const initial = JSON.parse($("initial").textContent);
  if (!initial.kiosk) return;

  const POLL_MS = 2000;
  let session = null;        // member id badged in, from /api/slicer/held
  let held = [];
  let pairings = [];
  let usb = { mounted: false, files: [] };
  let busy = false;

  function visible(id) {
    const el = $(id);
    return !!el && !el.hidden;
  }

  function toast(text) {
    const el = $("toast");
    el.textContent = text;
    el.hidden = false;
    setTimeout(() => { el.hidden = true; }, 7000);
  }

  const api = (method, path, body) => window.GatewayApi.request(method, path, body);

  function duration(s) {
    if (s == null || !isFinite(s)) return null;
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    if (h) return h + " h " + String(m).padStart(2, "0") + " min";
    if (m) return m + " min";
    return s + " s";
  }

  function analysis(j) {
    const parts = [];
    const d = duration(j.estimated_seconds);
    if (d) parts.push("about " + d);
    if (j.filament_mm) parts.push((j.filament_mm / 1000).toFixed(1) + " m filament");
    const e = j.print_extents || j.extents;
    if (e && e.min && e.max) {
      const size = ["x", "y", "z"].map((a) => {
        const d = e.max[a] - e.min[a];
        return d < 10 ? d.toFixed(1) : String(Math.round(d));
      });
      parts.push(size.join(" \u00d7 ") + " mm");
    }
    if (j.fits === true) parts.push("fits the machine");
    if (j.fits === false) parts.push("DOES NOT FIT the machine");
    return parts.join(" \u00b7 ");
  }

  // -- idle screen: whose jobs are waiting ---------------------------------------------

  function renderIdle() {
    const list = $("held-idle");
    list.textContent = "";
    const shown = held.slice(0, 3);
    for (const j of shown) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "held-name";
      name.textContent = j.display_name;
      const who = document.createElement("span");
      who.className = "held-for";
      who.textContent = "held for " + j.held_for;
      li.append(name, who);
      list.appendChild(li);
    }
    if (held.length > shown.length) {
      const li = document.createElement("li");
      li.className = "held-more";
      li.textContent = "and " + (held.length - shown.length) + " more waiting";
      list.appendChild(li);
    }
    list.hidden = held.length === 0;
  }

  // -- session screen: my held jobs, my key, pairing requests ----------------------------

  function renderMine() {
    const box = $("held-mine");
    box.textContent = "";
    const mine = held.filter((j) => session && j.member_id === session);
    for (const j of mine.slice(0, 1)) {
      const card = document.createElement("div");
      card.className = "held-card";
      card.dataset.id = j.id;
      const info = document.createElement("div");
      info.className = "held-info";
      const name = document.createElement("div");
      name.className = "held-title";
      name.textContent = j.display_name;
      const meta = document.createElement("div");
      meta.className = "held-meta" + (j.fits === false ? " bad" : "");
      meta.textContent = "Sent from your slicer" + (mine.length > 1 ? " (1 of " + mine.length + ")" : "")
        + (analysis(j) ? " \u00b7 " + analysis(j) : "");
      info.append(name, meta);
      const start = document.createElement("button");
      start.type = "button";
      start.className = "btn big go held-start";
      start.textContent = "Bed is clear \u2014 start";
      start.disabled = busy || j.fits === false;
      start.addEventListener("click", () => release(j));
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "btn small held-cancel";
      cancel.textContent = "Remove";
      cancel.addEventListener("click", () => cancelHeld(j));
      const buttons = document.createElement("div");
      buttons.className = "held-buttons";
      buttons.append(start, cancel);
      card.append(info, buttons);
      box.appendChild(card);
    }
    box.hidden = mine.length === 0;
  }

  function renderPairings() {
    const box = $("pairing");
    box.textContent = "";
    const p = pairings[0];
    box.hidden = !p;
    if (!p) return;
    const text = document.createElement("span");
    text.className = "grow";
    text.textContent = p.app + " asks to send files to this machine as you.";
    const yes = document.createElement("button");
    yes.type = "button";
    yes.className = "btn small go";
    yes.textContent = "Approve";
    yes.addEventListener("click", () => decide(p, true));
    const no = document.createElement("button");
    no.type = "button";
    no.className = "btn small";
    no.textContent = "Deny";
    no.addEventListener("click", () => decide(p, false));
    box.append(text, yes, no);
  }

  function renderUsb() {
    $("usb-open").hidden = !usb.mounted;
    const list = $("usb-files");
    list.textContent = "";
    for (const f of usb.files) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = f.name;
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = Math.max(1, Math.round(f.size / 1024)) + " KiB";
      b.append(name, meta);
      b.addEventListener("click", () => printFromUsb(f));
      li.appendChild(b);
      list.appendChild(li);
    }
    if (!usb.files.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "No G-code files (.gcode, .gco, .nc) on the stick.";
      list.appendChild(li);
    }
    if (!usb.mounted) $("usb-dialog").hidden = true;
  }

  function render() {
    renderIdle();
    renderMine();
    renderPairings();
    renderUsb();
  }

  // -- actions ---------------------------------------------------------------------------

  async function release(j) {
    busy = true;
    renderMine();
    const path = "/api/slicer/held/" + j.id + "/start";
    const start = async (discard) => {
      const r = await api("POST", path, discard ? { discard_interrupted: true } : undefined);
      held = held.filter((h) => h.id !== j.id);
      render();
      return r;
    };
    try {
      // kiosk.js asks before an interrupted job is discarded by this start.
      if (window.kioskStartDiscarding) await window.kioskStartDiscarding(start);
      else await start(false);
    } catch (err) {
      toast(err.message);
    } finally {
      busy = false;
      render();
    }
  }

  async function cancelHeld(j) {
    try {
      await api("POST", "/api/slicer/held/" + j.id + "/cancel");
      held = held.filter((h) => h.id !== j.id);
      render();
    } catch (err) {
      toast(err.message);
    }
  }

  async function decide(p, approve) {
    try {
      await api("POST", "/api/slicer/pairings/" + encodeURIComponent(p.token), { approve: approve });
      pairings = pairings.filter((q) => q.token !== p.token);
      toast(approve ? p.app + " can now send files as you." : p.app + " was refused.");
      render();
    } catch (err) {
      toast(err.message);
    }
  }

  async function showKey() {
    try {
      const k = await api("POST", "/api/slicer/my-key");
      $("key-value").textContent = k.key;
      $("key-qr").innerHTML = k.qr_svg;   // made by the gateway (segno), no user text in it
      $("key-dialog").hidden = false;
    } catch (err) {
      toast(err.message);
    }
  }

  function hideKey() {
    $("key-dialog").hidden = true;
    $("key-value").textContent = "";
    $("key-qr").textContent = "";
  }

  async function printFromUsb(f) {
    try {
      const r = await api("POST", "/api/slicer/usb/hold", { volume: f.volume, path: f.path });
      $("usb-dialog").hidden = true;
      toast(r.display_name + " was copied from the stick; it is at the top of your list.");
      await poll();
    } catch (err) {
      toast(err.message);
    }
  }

  // Called by kiosk.js with the library: the member's own files first, named as sent.
  window.slicerArrange = async function (files) {
    let owners = {};
    let me = session;
    try {
      owners = (await api("GET", "/api/slicer/owners")).owners;
      // Who is badged in now: this runs as the session screen opens, often
      // before this file's own poll has heard of the session.
      me = (await api("GET", "/api/slicer/held")).session_member;
    } catch (err) {
      return files;
    }
    const out = files.map((f) => {
      const o = owners[f.name];
      return Object.assign({}, f, {
        display_name: o ? o.display_name : f.name,
        mine: !!(o && me && o.member_id === me),
      });
    });
    out.sort((a, b) => (b.mine ? 1 : 0) - (a.mine ? 1 : 0));
    return out;
  };

  // -- polling ---------------------------------------------------------------------------

  async function poll() {
    const idle = visible("screen-locked");
    const atWork = visible("screen-session");
    if (!idle && !atWork) return;
    try {
      const data = await api("GET", "/api/slicer/held");
      held = data.held;
      session = data.session_member;
      if (atWork && session) {
        pairings = (await api("GET", "/api/slicer/pairings")).pairings;
      } else {
        pairings = [];
      }
      if (atWork) usb = await api("GET", "/api/slicer/usb");
    } catch (err) {
      return;  // kiosk.js reports a lost connection
    }
    render();
  }

  const panel = $("sim-panel");
  if (panel) {
    panel.addEventListener("click", async (ev) => {
      const b = ev.target.closest("button[data-usb]");
      if (!b) return;
      try {
        await api("POST", "/api/sim/usb", { action: b.dataset.usb, name: "STICK" });
        toast(b.dataset.usb === "plug" ? "USB stick plugged in." : "USB stick pulled out.");
        await poll();
      } catch (err) {
        toast(err.message);
      }
    });
  }

  // Keys and pairing need to know who is at the machine: no badges, no keys.
  if (!initial.state || !initial.state.access) $("my-key").hidden = true;
  $("my-key").addEventListener("click", showKey);
  $("key-done").addEventListener("click", hideKey);
  $("usb-open").addEventListener("click", () => { $("usb-dialog").hidden = false; });
  $("usb-close").addEventListener("click", () => { $("usb-dialog").hidden = true; });
  // A new screen (badge in or out) hides the key at once and refreshes the lists.
  const observer = new MutationObserver(() => {
    if (!visible("screen-session")) hideKey();
    poll();
  });
  for (const s of document.querySelectorAll(".screen")) {
    observer.observe(s, { attributes: true, attributeFilter: ["hidden"] });
  }
  poll();
  setInterval(poll, POLL_MS);
})();
