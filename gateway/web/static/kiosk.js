// The touchscreen: one screen at a time, chosen from the machine's and the access
// capability's state, kept current by the server-sent event stream /api/events.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const initial = JSON.parse($("initial").textContent);
  if (!initial.kiosk) {
    show("remote");
    $("machine-state").textContent = "Touchscreen only";
    return;
  }

  let S = initial.state;          // {machine, access, simulation}
  let files = [];
  let lastResult = null;          // the last finished job, shown on the session screen
  let lockedNote = null;          // why the last session ended
  let denialTimer = 0;
  let toastTimer = 0;
  let confirmAction = null;
  let simOpen = false;
  // Set by the e-stop event until the machine is running normally again: Marlin answers
  // the e-stop with "Printer halted", which alone would read as a controller error.
  let estopped = S.machine.state === "estop";

  // Every sentence a member reads comes from the shared glossary (words.js).
  const W = window.Words;
  const TEMP_NAMES = W.SENSOR;
  const STATE_TEXT = W.MACHINE;
  const END_TEXT = W.SESSION_END;

  // -- helpers ------------------------------------------------------------------------

  const duration = W.duration;

  // The wall-clock time ``s`` seconds from now, in the space's time zone.
  function clockIn(s) {
    if (s == null || !isFinite(s)) return "\u2013";
    return W.clock(Date.now() / 1000 + s);
  }

  function toast(text, ms) {
    const el = $("toast");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toastTimer);
    if (ms !== 0) toastTimer = setTimeout(() => { el.hidden = true; }, ms || 5000);
  }

  function showDenial(text) {
    $("denial-text").textContent = text;
    $("denial").hidden = false;
    placeDenial(current);
    clearTimeout(denialTimer);
    denialTimer = setTimeout(hideDenial, 8000);
  }

  function hideDenial() {
    $("denial").hidden = true;
    for (const p of document.querySelectorAll(".prompt")) p.classList.remove("denied");
  }

  // On the badge screens the refusal takes the place of the badge picture, where the
  // member is looking; elsewhere it lies over the top of the screen until tapped away.
  function placeDenial(screen) {
    const el = $("denial");
    const prompt = (screen === "locked" || screen === "lockout")
      ? $("screen-" + screen).querySelector(".prompt") : null;
    if (prompt) {
      if (el.parentNode !== prompt) prompt.prepend(el);
      el.classList.add("inline");
      prompt.classList.toggle("denied", !el.hidden);
    } else {
      if (el.parentNode !== document.querySelector("main")) document.querySelector("main").prepend(el);
      el.classList.remove("inline");
    }
  }

  const api = (method, path, body) => window.GatewayApi.request(method, path, body);

  async function act(method, path, body) {
    try {
      return await api(method, path, body);
    } catch (err) {
      toast(err.message, 7000);
      return null;
    }
  }

  // -- which screen ---------------------------------------------------------------------

  function jobActive() {
    const job = S.machine.job;
    return !!job && (job.state === "running" || job.state === "paused" || job.state === "finishing");
  }

  function mayAct() {
    return !S.access || !!S.access.session;
  }

  function choose() {
    const a = S.access;
    if (offline) return "offline";
    if (jobActive()) return "job";
    if (!a || a.session) return "session";
    if (a.state === "lockout") return "lockout";
    return "locked";
  }

  function show(name) {
    for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== "screen-" + name;
  }

  function placeSimPanel(screen) {
    const panel = $("sim-panel");
    if (!panel) return;
    if (screen === "offline") {  // a badge cannot reach a gateway that is not there
      panel.hidden = true;
      $("sim-toggle").hidden = true;
      return;
    }
    const dock = screen === "locked" || screen === "lockout";
    if (dock) {
      $("screen-" + screen).appendChild(panel);
      panel.classList.remove("sim-float");
      panel.hidden = false;
      $("sim-toggle").hidden = true;
    } else {
      document.body.appendChild(panel);
      panel.classList.add("sim-float");
      panel.hidden = !simOpen;
      $("sim-toggle").hidden = false;
      $("sim-toggle").textContent = simOpen ? "Close reader" : "Simulated badge";
    }
  }

  // -- camera -------------------------------------------------------------------------------

  // The live view streams only while its screen is shown and the page is visible: every
  // open stream costs the Pi JPEG copies and the browser decoding.  Clearing src ends it.
  const RETRY_MS = 5000;

  function liveViews() {
    const visible = document.visibilityState === "visible";
    for (const img of document.querySelectorAll(".live-img")) {
      const want = visible && img.offsetParent !== null;
      if (want && !img.getAttribute("src") && !img.dataset.retry) {
        img.src = img.dataset.src + "?t=" + Date.now();
      } else if (!want && img.getAttribute("src")) {
        img.removeAttribute("src");
      }
    }
  }

  for (const img of document.querySelectorAll(".live-img")) {
    const off = img.parentNode.querySelector(".live-off");
    img.addEventListener("load", () => { off.hidden = true; });
    img.addEventListener("error", () => {
      if (!img.getAttribute("src")) return;  // cleared on purpose
      img.removeAttribute("src");
      off.hidden = false;
      img.dataset.retry = "1";
      setTimeout(() => { delete img.dataset.retry; liveViews(); }, RETRY_MS);
    });
  }
  document.addEventListener("visibilitychange", liveViews);

  // -- rendering --------------------------------------------------------------------------

  function stopped() {
    const m = S.machine;
    return estopped && (m.state === "estop" || m.state === "error") ? "estop" : m.state;
  }

  function renderBar() {
    const m = S.machine;
    const el = $("machine-state");
    if (offline) {
      el.textContent = STATE_TEXT.offline;
      el.classList.add("alarm");
      return;
    }
    let text = STATE_TEXT[stopped()] || m.state;
    if (S.access && S.access.state === "lockout" && m.state === "idle") text = W.ACCESS.lockout;
    if (S.access && S.access.session) text += " \u00b7 " + S.access.session.member_name;
    el.textContent = text;
    el.classList.toggle("alarm", m.state === "estop" || m.state === "error");
  }

  // -- presence: how a job ended, shown whoever is (or is not) at the machine --------------

  function resultText(r) {
    const why = r.reason && r.reason !== r.outcome ? ": " + r.reason : "";
    return r.outcome === "completed" ? "\u2714 " + r.file + " finished in " + duration(r.seconds) + "."
      : r.outcome === "cancelled" ? r.file + " was cancelled."
      : r.outcome === "estop" ? r.file + " was stopped by the emergency stop."
      : r.file + " failed" + why + ".";
  }

  function renderLocked() {
    const a = S.access || {};
    const note = $("locked-note");
    let text = lockedNote;
    // A job that finished after its member badged out: say how it ended.
    if (lastResult) text = (text ? text + " " : "") + resultText(lastResult);
    if (a.state === "ending" && a.ending) {
      text = a.ending.waiting_for_job
        ? "Finishing " + a.ending.member_name + "'s job."
        : "Power stays on for a few seconds: badge again to carry on.";
    }
    if (a.interlocks_tripped && a.interlocks_tripped.length) {
      text = "Close the " + a.interlocks_tripped.join(", ") + " before badging in.";
    }
    const problem = machineProblem(true);
    if (problem) text = problem.text;
    note.hidden = !text;
    note.textContent = text || "";
  }

  function renderLockout() {
    const lock = (S.access && S.access.lockout) || {};
    $("lockout-reason").textContent = lock.reason || "";
    $("lockout-by").textContent = lock.by ? "Locked out by " + lock.by + "." : "";
  }

  function machineProblem(locked) {
    const m = S.machine;
    if (m.state === "estop" || m.state === "error") {
      const estop = stopped() === "estop";
      const what = estop ? "The emergency stop was pressed."
        : "The machine's controller stopped with a problem" + (m.message ? " (" + m.message + ")." : ".");
      const next = locked ? W.ADVICE.estop_locked : estop ? W.ADVICE.estop_kiosk : W.ADVICE.controller;
      return { text: what + " " + next, reset: true, resetText: estop ? "Clear the stop" : "Reconnect" };
    }
    if (m.state === "disconnected" || m.state === "connecting") {
      return { text: "The machine's controller is not connected" + (m.message ? ": " + m.message : "") +
        ". " + W.ADVICE.unplugged, reset: false };
    }
    return null;
  }

  function renderSession() {
    const a = S.access;
    const session = a && a.session;
    $("hello").textContent = session ? "Hello, " + session.member_name : S.machine.name || "Ready";
    $("hello-role").textContent = session
      ? (session.role ? W.role(session.role) + " \u00b7 " : "") + "Choose a file to start it"
      : "Access control is off. Choose a file to start it";
    $("badge-out").hidden = !session;
    renderInduction();

    const banner = $("session-banner");
    const problem = machineProblem();
    if (problem) {
      banner.className = "banner bad";
      $("session-banner-text").textContent = problem.text;
      $("reset").hidden = !problem.reset;
      if (problem.resetText) $("reset").textContent = problem.resetText;
      banner.hidden = false;
    } else if (lastResult) {
      const r = lastResult;
      const ok = r.outcome === "completed";
      banner.className = "banner " + (ok ? "ok" : r.outcome === "cancelled" ? "info" : "bad");
      $("session-banner-text").textContent = resultText(r);
      $("reset").hidden = true;
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    renderFiles();
  }

  function renderFiles() {
    const list = $("files");
    list.textContent = "";
    if (!files.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "No files yet. Upload G-code from the admin page.";
      list.appendChild(li);
      return;
    }
    const ready = S.machine.state === "idle" && mayAct();
    for (const f of files) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.disabled = !ready;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = f.display_name || f.name;
      if (f.mine) li.className = "mine";
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = f.estimated_seconds ? "about " + duration(f.estimated_seconds)
        : f.lines + " lines";
      const mark = document.createElement("span");
      mark.className = "go-mark";
      mark.textContent = "\u25b6";
      b.append(name, meta, mark);
      b.addEventListener("click", () => confirmStart(f));
      li.appendChild(b);
      list.appendChild(li);
    }
  }

  function renderReadings() {
    const m = S.machine;
    const box = $("readings");
    box.textContent = "";
    const add = (label, value) => {
      const d = document.createElement("div");
      d.className = "stat";
      const l = document.createElement("div");
      l.className = "label";
      l.textContent = label;
      const v = document.createElement("div");
      v.className = "value";
      v.textContent = value;
      d.append(l, v);
      box.appendChild(d);
    };
    if (m.firmware === "grbl") {
      for (const axis of ["x", "y", "z"]) {
        if (m.position && m.position[axis] != null) add(axis.toUpperCase(), m.position[axis].toFixed(2) + " mm");
      }
    } else {
      for (const [sensor, pair] of Object.entries(m.temperatures || {}).slice(0, 3)) {
        const target = pair[1] ? " / " + Math.round(pair[1]) : "";
        add(TEMP_NAMES[sensor] || sensor, Math.round(pair[0]) + target + " \u00b0C");
      }
    }
    box.hidden = !box.childElementCount;
  }

  function renderJob() {
    const job = S.machine.job;
    const paused = job.state === "paused";
    $("job-file").textContent = job.file;
    $("job-state").textContent = paused ? "Paused" : job.state === "finishing" ? "Finishing moves" : (S.machine.kind === "printer" ? "Printing" : "Running");
    $("job-state").classList.toggle("paused", paused);
    const pct = Math.floor((job.fraction || 0) * 100);
    $("progress-fill").style.width = pct + "%";
    $("progress-pct").textContent = pct + " %";
    $("progress").classList.toggle("paused", paused);
    $("job-elapsed").textContent = duration(job.elapsed);
    $("job-eta").textContent = paused ? "paused" : duration(job.eta_seconds);
    $("job-done-at").textContent = paused ? "\u2013" : clockIn(job.eta_seconds);
    renderReadings();

    // Presence rule: anyone at the machine may pause or cancel; resuming, like
    // starting, needs a member badged in.
    const allowed = mayAct();
    const session = S.access && S.access.session;
    $("pause").hidden = paused || job.state === "finishing";
    $("resume").hidden = !paused || !allowed;
    $("cancel").hidden = false;
    $("job-badge-out").hidden = !session;
    const note = $("job-note");
    if (!allowed) {
      const a = S.access || {};
      const who = (a.ending && a.ending.member_name) || "The member";
      // One line: on 800x480 a second one squeezes the progress bar.
      note.textContent = who + " has badged out. " + (paused
        ? "Badge in to resume, or cancel the job."
        : "Power goes off when this job ends.");
      note.hidden = false;
    } else {
      note.hidden = true;
    }
  }

  function render() {
    const screen = choose();
    renderBar();
    if (screen === "offline") renderOffline();
    else if (screen === "locked") renderLocked();
    else if (screen === "lockout") renderLockout();
    else if (screen === "session") renderSession();
    else renderJob();
    if (screen !== "session" && !$("confirm").hidden && confirmAction && confirmAction.start) {
      closeConfirm();
    }
    show(screen);
    liveViews();
    placeSimPanel(screen);
    placeDenial(screen);
    if (screen !== current) {
      current = screen;
      if (screen === "session") loadFiles();
    }
  }
  let current = null;

  async function loadFiles() {
    const data = await act("GET", "/api/files");
    if (data) {
      // slicer.js puts the badged-in member's own files first, under their own names.
      files = window.slicerArrange ? await window.slicerArrange(data.files) : data.files;
      if (choose() === "session") renderFiles();
    }
  }

  // -- confirmation ----------------------------------------------------------------------

  function openConfirm(title, body, yesText, yesClass, action) {
    $("confirm-title").textContent = title;
    $("confirm-body").textContent = body;
    const yes = $("confirm-yes");
    yes.textContent = yesText;
    yes.className = "btn big " + yesClass;
    confirmAction = action;
    $("confirm").hidden = false;
  }

  function closeConfirm() {
    $("confirm").hidden = true;
    confirmAction = null;
  }

  function confirmStart(f) {
    const parts = [];
    if (f.estimated_seconds) parts.push("About " + duration(f.estimated_seconds) + ".");
    if (f.filament_mm) parts.push((f.filament_mm / 1000).toFixed(1) + " m of filament.");
    parts.push("Check the machine is clear before you start.");
    const action = async () => {
      await startDiscarding((discard) => api("POST", "/api/jobs",
        discard ? { file: f.name, discard_interrupted: true } : { file: f.name }));
    };
    action.start = true;
    openConfirm("Start " + f.name + "?", parts.join(" "), "Start", "go", action);
  }

  // A start refused because an interrupted job is still offered for resume: say which
  // (the gateway's words) and start only if the member confirms that it goes.  Used by
  // slicer.js too, for held jobs.
  async function startDiscarding(start) {
    try {
      return await start(false);
    } catch (err) {
      if (err.code !== "interrupted_pending") {
        toast(err.message, 7000);
        return null;
      }
      const again = async () => {
        try {
          await start(true);
        } catch (err2) {
          toast(err2.message, 7000);
        }
      };
      again.start = true;
      openConfirm("Discard the interrupted job?", err.message, "Discard and start",
        "danger", again);
      return null;
    }
  }
  window.kioskStartDiscarding = startDiscarding;

  // -- offline ------------------------------------------------------------------------------
  // Without the event stream the screen cannot know the machine's state and nothing tapped
  // here reaches the gateway; the machine's power needs the gateway, so it is disabled.
  // After a short grace (a stream can blink when the Wi-Fi does) the kiosk says so plainly.

  const OFFLINE_GRACE_MS = 2500;
  const RECONNECT_MS = 3000;
  // The gateway sends at least a "ping" every HEARTBEAT seconds (gateway/web/sse.py); a
  // stream silent for two of them and a bit is a hung gateway, not a quiet one.
  const SILENCE_MS = (2 * Number(document.body.dataset.heartbeat || 15) + 5) * 1000;
  let lastHeard = Date.now();
  let watchdog = 0;
  let offline = false;
  let offlineSince = null;   // when contact was lost (ms since the epoch), or null
  let offlineTimer = 0;
  let relayKnown = null;     // { on, at }: the relay as the gateway last reported it

  function lostContact() {
    if (offlineSince === null) offlineSince = Date.now();
    if (offline || offlineTimer) return;
    offlineTimer = setTimeout(() => {
      offlineTimer = 0;
      offline = true;
      closeConfirm();
      hideDenial();
      $("toast").hidden = true;
      render();
    }, OFFLINE_GRACE_MS);
  }

  function regainedContact() {
    clearTimeout(offlineTimer);
    offlineTimer = 0;
    offlineSince = null;
    offline = false;
  }

  function noteRelay() {
    const session = S.access && S.access.session;
    if (session && session.member_id) memberNames[session.member_id] = session.member_name;
    if (S.access && typeof S.access.relay_on === "boolean") {
      relayKnown = { on: S.access.relay_on, at: Date.now() / 1000 };
    }
  }

  function renderOffline() {
    $("offline-advice").textContent = W.ADVICE.offline;
    const facts = ["No contact with the gateway since " + W.time((offlineSince || Date.now()) / 1000) + "."];
    if (relayKnown) {
      facts.push("Machine power was last reported " + (relayKnown.on ? "ON" : "off") + " at " +
        W.time(relayKnown.at) + (relayKnown.on ? "; the gateway switches it off when it stops." : "."));
    } else if (S.access === null) {
      facts.push("This gateway does not switch the machine's power.");
    }
    facts.push("This screen reconnects by itself.");
    $("offline-facts").textContent = facts.join(" ");
  }

  // -- induction ----------------------------------------------------------------------------
  // A trainer's badge followed by a new member's records an induction and hands the
  // machine over; the screen confirms it until tapped away or the next job starts.

  let induction = null;      // { member, trainer, at }
  const memberNames = {};    // member id -> name, of every session seen: names the trainer

  function renderInduction() {
    const el = $("induction-banner");
    if (!induction) {
      el.hidden = true;
      return;
    }
    $("induction-text").textContent = "\u2714 " + induction.member + " is now inducted on this " +
      (S.machine.kind === "cnc" ? "CNC" : S.machine.kind || "machine") + ". Recorded by " +
      induction.trainer + " at " + W.clock(induction.at) + ".";
    el.hidden = false;
  }

  // -- live updates ------------------------------------------------------------------------

  function applyAccessState(e) {
    const a = S.access || {};
    const old = a.session;
    const inSession = (e.state === "authorised" || e.state === "in_use") && e.member_name;
    a.state = e.state;
    a.relay_on = e.relay_on;
    a.job_running = e.job_running;
    a.session = inSession ? {
      member_id: e.member_id, member_name: e.member_name,
      role: old && old.member_id === e.member_id ? old.role : null,
    } : null;
    a.ending = e.state === "ending" ? { member_name: e.member_name, waiting_for_job: e.job_running } : null;
    a.lockout = e.lockout_reason ? { reason: e.lockout_reason, by: (a.lockout && a.lockout.by) || "" } : null;
    a.interlocks_tripped = e.interlocks_tripped;
    S.access = a;
  }

  let opened = false;

  function connect() {
    const es = new EventSource("/api/events");
    const on = (name, fn) => es.addEventListener(name, (m) => {
      lastHeard = Date.now();
      fn(JSON.parse(m.data));
      noteRelay();
      render();
    });
    lastHeard = Date.now();
    clearInterval(watchdog);
    watchdog = setInterval(() => {
      if (Date.now() - lastHeard < SILENCE_MS) return;
      clearInterval(watchdog);
      es.close();
      $("live-dot").classList.remove("live");
      lostContact();
      setTimeout(connect, RECONNECT_MS);
    }, 1000);
    es.addEventListener("ping", () => { lastHeard = Date.now(); });
    es.onopen = () => {
      $("live-dot").classList.add("live");
      $("toast").hidden = true;
      // Back after the gateway was away: its live view streams ended with it.
      if (opened) for (const img of document.querySelectorAll(".live-img")) img.removeAttribute("src");
      opened = true;
      liveViews();
    };
    // "error" is both the machine's error topic and EventSource's connection-lost event.
    es.addEventListener("error", (ev) => {
      if (ev.data) return;  // a machine error: the state that follows says what to do
      $("live-dot").classList.remove("live");
      lostContact();
      // EventSource retries a refused connection by itself, but gives up on an HTTP
      // error (a proxy's 502, the gateway's 503): then a fresh one is opened later.
      if (es.readyState === EventSource.CLOSED) {
        clearInterval(watchdog);
        es.close();
        setTimeout(connect, RECONNECT_MS);
      }
    });
    on("hello", (d) => { S = d; regainedContact(); });
    on("estop", () => { estopped = true; });
    on("state", (d) => {
      const m = S.machine;
      if (d.state !== "estop" && d.state !== "error") estopped = false;
      for (const k of ["state", "job", "temperatures", "position", "grbl_state", "message", "firmware_version"]) m[k] = d[k];
    });
    on("job_progress", (d) => {
      const job = S.machine.job;
      if (job && job.id === d.job_id) {
        job.fraction = d.fraction; job.eta_seconds = d.eta_seconds;
        job.elapsed = d.elapsed; job.lines_done = d.lines_done;
      }
    });
    on("job_finished", (d) => {
      lastResult = d;
      if (S.machine.job && S.machine.job.id === d.job_id) S.machine.job.state = d.outcome;
    });
    on("access_state", applyAccessState);
    on("session_started", (d) => {
      hideDenial();
      lockedNote = null;
      lastResult = null;
      induction = d.inducted_by ? {
        member: d.member_name, trainer: memberNames[d.inducted_by] || "the trainer", at: Date.now() / 1000,
      } : null;
      memberNames[d.member_id] = d.member_name;
      if (S.access) S.access.session = { member_id: d.member_id, member_name: d.member_name, role: d.role };
    });
    on("session_ended", (d) => {
      lockedNote = d.message || W.sessionEnd(d.reason);
      induction = null;
      if (d.message) showDenial(d.message);
    });
    on("job_started", () => { induction = null; });
    on("lockout", (d) => {
      if (S.access) S.access.lockout = d.active ? { reason: d.reason, by: d.by } : null;
    });
    on("access_denied", (d) => showDenial(W.denial(d.reason, d.message)));
  }

  // -- buttons -----------------------------------------------------------------------------

  $("estop").addEventListener("click", async () => {
    if (offline) {
      // Sent anyway in case the gateway is just back; the member is told what works now.
      toast("The gateway is not answering: use the stop switch on the machine itself.", 8000);
      api("POST", "/api/estop").catch(() => {});
      return;
    }
    if (await act("POST", "/api/estop")) toast("Emergency stop sent.", 6000);
  });
  $("induction-ok").addEventListener("click", () => { induction = null; render(); });
  $("badge-out").addEventListener("click", () => act("POST", "/api/badge-out"));
  $("job-badge-out").addEventListener("click", () => act("POST", "/api/badge-out"));
  $("pause").addEventListener("click", () => act("POST", "/api/jobs/current/pause"));
  $("resume").addEventListener("click", () => act("POST", "/api/jobs/current/resume"));
  $("cancel").addEventListener("click", () => {
    openConfirm("Cancel " + S.machine.job.file + "?", "The job stops and cannot be resumed.",
      "Cancel job", "danger", async () => { await act("POST", "/api/jobs/current/cancel"); });
  });
  $("reset").addEventListener("click", () => act("POST", "/api/machine/reset"));
  $("confirm-no").addEventListener("click", closeConfirm);
  $("denial").addEventListener("click", hideDenial);
  $("confirm-yes").addEventListener("click", async () => {
    const action = confirmAction;
    closeConfirm();
    if (action) await action();
  });

  const panel = $("sim-panel");
  if (panel) {
    const present = (uid) => act("POST", "/api/sim/badge", { uid: uid });
    panel.addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-uid]");
      if (b) present(b.dataset.uid);
    });
    $("sim-present").addEventListener("click", () => {
      const uid = $("sim-uid").value.trim();
      if (uid) present(uid);
    });
    $("sim-toggle").addEventListener("click", () => { simOpen = !simOpen; render(); });
  }

  noteRelay();
  render();
  connect();
})();
