// Admin pages: every request carries the token kept in this tab's sessionStorage.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const W = window.Words;  // the shared glossary and formats (words.js)
  const KEY = "gateway-token";
  let token = sessionStorage.getItem(KEY) || "";
  let streamAbort = null;
  let tab = "status";

  // -- requests -------------------------------------------------------------------------

  function headers(extra) {
    return Object.assign({ Authorization: "Bearer " + token }, extra || {});
  }

  async function api(method, path, body) {
    try {
      return await window.GatewayApi.request(method, path, body, token);
    } catch (err) {
      if (err.status === 401) signOut("The token was refused: " + err.message);
      throw err;
    }
  }

  // The gateway's sentence for an error answer read here (streams, downloads).
  function message(data, r) {
    return (data && data.error && data.error.message) || r.status + " " + r.statusText;
  }

  // An error stays until the admin dismisses it or a newer one replaces it.
  function fail(err) {
    $("error").textContent = err.message || String(err);
    $("error-box").hidden = false;
  }

  $("error-dismiss").addEventListener("click", () => { $("error-box").hidden = true; });

  // -- formatting -----------------------------------------------------------------------

  const when = W.dateTime;   // in the space's time zone (site.timezone)
  const duration = W.duration;
  const size = (b) => (b > 1048576 ? (b / 1048576).toFixed(1) + " MiB" : (b / 1024).toFixed(1) + " KiB");

  function rows(tbody, items, cells) {
    const el = $(tbody);
    el.textContent = "";
    for (const item of items) {
      const tr = document.createElement("tr");
      for (const c of cells(item)) {
        const td = document.createElement("td");
        if (c instanceof Node) td.appendChild(c); else td.textContent = c == null ? "\u2013" : c;
        tr.appendChild(td);
      }
      el.appendChild(tr);
    }
    if (!items.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 9;
      td.textContent = "Nothing yet.";
      tr.appendChild(td);
      el.appendChild(tr);
    }
  }

  function facts(dl, pairs) {
    const el = $(dl);
    el.textContent = "";
    for (const [k, v] of pairs) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v == null || v === "" ? "\u2013" : v;
      el.append(dt, dd);
    }
  }

  function button(text, onClick, cls) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    if (cls) b.className = cls;
    b.addEventListener("click", onClick);
    return b;
  }

  // -- sign in ----------------------------------------------------------------------------

  async function signIn() {
    try {
      const me = await api("GET", "/api/whoami");
      $("who-text").textContent = "Signed in as " + me.name + " (" + me.scope + ")";
      $("who").hidden = false;
      $("login").hidden = true;
      $("tabs").hidden = false;
      openTab(tab);
      follow();
    } catch (err) {
      $("login-error").textContent = err.message;
    }
  }

  function signOut(why) {
    token = "";
    sessionStorage.removeItem(KEY);
    if (streamAbort) streamAbort.abort();
    stopCamera();
    $("who").hidden = true;
    $("tabs").hidden = true;
    $("error-box").hidden = true;
    timeline = [];
    timelineNewest = 0;
    for (const s of document.querySelectorAll(".tab")) s.hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = why || "";
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem(KEY, token);
    $("token").value = "";
    signIn();
  });
  $("sign-out").addEventListener("click", () => signOut(""));

  // -- tabs -------------------------------------------------------------------------------

  const loaders = {
    status: loadStatus, timeline: loadTimeline, jobs: loadJobs, files: loadFiles, sessions: loadSessions,
    access: loadAccess, tokens: loadTokens,
  };
  // Members' slicer keys and jobs live in slicer-admin.js.
  if (window.slicerAdmin) loaders.members = window.slicerAdmin.load;

  function openTab(name) {
    tab = name;
    if (name !== "camera") stopCamera();
    for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === name);
    for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== "tab-" + name;
    loaders[name]().catch(fail);
  }

  $("tabs").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-tab]");
    if (b) openTab(b.dataset.tab);
  });

  // -- status and the live stream -----------------------------------------------------------

  let machine = null;
  let access = null;

  function renderStatus() {
    if (!machine) return;
    facts("machine-facts", [
      ["State", W.machine(machine.state)], ["Firmware", machine.firmware + " " + (machine.firmware_version || "")],
      ["Message", machine.message], ["Fault", machine.fault],
      ["Temperatures", Object.entries(machine.temperatures || {}).map(([k, v]) => W.temperature(k, v)).join(", ")],
      ["Position", Object.entries(machine.position || {}).map(([k, v]) => k.toUpperCase() + " " + v).join(" ")],
    ]);
    const job = machine.job;
    $("job-box").hidden = !job;
    if (job) {
      $("job-progress").value = job.fraction || 0;
      const active = job.state === "running" || job.state === "paused";
      $("job-title").textContent = active ? "Current job" : "Last job";
      facts("job-facts", [
        ["File", job.file], ["State", W.outcome(job.state)],
        ["Progress", Math.floor((job.fraction || 0) * 100) + " % (" + job.lines_done + " / " + job.lines_total + " lines)"],
        ["Elapsed", duration(job.elapsed)], ["Time left", active ? duration(job.eta_seconds) : null],
      ]);
    }
    if (access) {
      facts("access-facts", [
        ["State", W.access(access.state)], ["Member", access.session ? access.session.member_name : null],
        ["Lockout", access.lockout ? access.lockout.reason + " (by " + access.lockout.by + ")" : "none"],
        ["Last refusal", access.last_denial],
      ]);
    } else {
      facts("access-facts", [["Access control", "off"]]);
    }
  }

  async function loadStatus() {
    machine = await api("GET", "/api/status");
    renderStatus();
  }

  // -- the timeline ---------------------------------------------------------------------
  // Rows come from /api/timeline, written by the gateway in words; the live stream only
  // says when to ask for newer ones.  Filters work on the rows already here.

  let timeline = [];          // newest first
  let timelineNewest = 0;
  let timelineTimer = 0;
  const KINDS = {
    jobs: (e) => e.kind.startsWith("job_") || e.kind === "timelapse",
    people: (e) => ["session_started", "session_ended", "access_denied", "induction", "lockout"].includes(e.kind),
    problems: (e) => e.level !== "info",
  };

  async function fetchTimeline() {
    const page = await api("GET", "/api/timeline?limit=500&after=" + timelineNewest);
    timeline = page.entries.concat(timeline).slice(0, 1000);
    timelineNewest = page.newest;
    if (tab === "timeline") renderTimeline();
  }

  async function loadTimeline() {
    $("tl-zone").textContent = W.zone ? "times in " + W.zone : "";
    renderTimeline();
    await fetchTimeline();
  }

  function renderTimeline() {
    const kind = KINDS[$("tl-kind").value];
    const words = $("tl-search").value.trim().toLowerCase();
    const shown = timeline.filter((e) => (!kind || kind(e)) &&
      (!words || (e.text + " " + (e.who || "")).toLowerCase().includes(words)));
    rows("events", shown.slice(0, 300), (e) => [W.day(e.at) + ", " + W.time(e.at), e.who, e.text]);
    const trs = $("events").children;
    shown.slice(0, 300).forEach((e, i) => { trs[i].className = e.level; });
  }

  function logEvent() {
    clearTimeout(timelineTimer);
    timelineTimer = setTimeout(() => fetchTimeline().catch(() => {}), 300);
  }

  $("tl-kind").addEventListener("change", renderTimeline);
  $("tl-search").addEventListener("input", renderTimeline);
  $("tl-filters").addEventListener("submit", (ev) => ev.preventDefault());

  function onEvent(name, data) {
    if (name === "hello") {
      machine = data.machine;
      access = data.access;
    } else if (name === "state" && machine) {
      Object.assign(machine, data);
    } else if (name === "job_progress" && machine && machine.job && machine.job.id === data.job_id) {
      Object.assign(machine.job, { fraction: data.fraction, eta_seconds: data.eta_seconds,
        elapsed: data.elapsed, lines_done: data.lines_done });
    } else if (name === "access_state" && access) {
      access.state = data.state;
      access.last_denial = data.last_denial;
      access.session = data.member_name && (data.state === "authorised" || data.state === "in_use")
        ? { member_name: data.member_name } : null;
      access.lockout = data.lockout_reason ? { reason: data.lockout_reason, by: (access.lockout || {}).by || "" } : null;
    } else if (name === "lockout" && access) {
      access.lockout = data.active ? { reason: data.reason, by: data.by } : null;
    }
    if (!["state", "job_progress", "hello", "ping"].includes(name)) logEvent(name, data);
    renderStatus();
  }

  // EventSource cannot send a token, so the stream is read with fetch and parsed here.
  async function follow() {
    if (streamAbort) streamAbort.abort();
    const ctrl = new AbortController();
    streamAbort = ctrl;
    let delay = 1000;
    while (!ctrl.signal.aborted && token) {
      try {
        const r = await fetch("/api/events", { headers: headers(), signal: ctrl.signal });
        if (!r.ok) throw new Error(message(await r.json().catch(() => ({})), r));
        $("live").textContent = "live";
        $("live").classList.add("on");
        delay = 1000;
        const reader = r.body.getReader();
        const decoder = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let end;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            let name = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) name = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (data) onEvent(name, JSON.parse(data));
          }
        }
      } catch (err) {
        if (ctrl.signal.aborted) return;
      }
      $("live").textContent = "reconnecting";
      $("live").classList.remove("on");
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 30000);
    }
  }

  document.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-post]");
    if (!b) return;
    if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
    try {
      await api("POST", b.dataset.post);
    } catch (err) {
      fail(err);
    }
  });

  // -- jobs, files --------------------------------------------------------------------------

  async function loadJobs() {
    const data = await api("GET", "/api/jobs?limit=100");
    rows("jobs", data.jobs, (j) => [j.id, j.file, j.member_name, W.door(j.origin), W.outcome(j.state),
      when(j.started_at), j.seconds != null ? duration(j.seconds)
        : j.started_at && j.ended_at ? duration(j.ended_at - j.started_at) : null,
      (j.lines_done || 0) + " / " + (j.lines_total || 0), j.reason && j.reason !== j.state ? j.reason : null]);
  }

  async function loadFiles() {
    const data = await api("GET", "/api/files");
    rows("files", data.files, (f) => [f.name, size(f.size), f.lines,
      f.estimated_seconds ? duration(f.estimated_seconds) : null, when(f.uploaded_at),
      button("Delete", async () => {
        if (!confirm("Delete " + f.name + "?")) return;
        try { await api("DELETE", "/api/files/" + encodeURIComponent(f.name)); loadFiles(); } catch (err) { fail(err); }
      })]);
  }

  $("upload-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = $("upload-file").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    const bar = $("upload-progress");
    bar.hidden = false;
    bar.value = 0;
    $("upload-status").textContent = "";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
    xhr.onload = () => {
      bar.hidden = true;
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (err) { data = {}; }
      if (xhr.status === 201) {
        $("upload-status").textContent = "Uploaded " + data.name + " (" + data.lines + " lines).";
        $("upload-form").reset();
        loadFiles();
      } else {
        $("upload-status").textContent = "";
        fail(new Error((data.error && data.error.message) || "upload failed: " + xhr.status));
      }
    };
    xhr.onerror = () => { bar.hidden = true; fail(new Error("the upload was interrupted")); };
    xhr.open("POST", "/api/files");
    xhr.setRequestHeader("Authorization", "Bearer " + token);
    xhr.send(form);
  });

  // -- sessions, usage, CSV -------------------------------------------------------------------

  async function loadSessions() {
    try {
      const s = await api("GET", "/api/sessions?limit=200");
      rows("sessions", s.sessions, (r) => [r.member_name, r.role, when(r.started_at),
        duration(r.duration), r.jobs, r.end_reason ? W.sessionEnd(r.end_reason) : (r.ended_at ? null : "still open")]);
      const u = await api("GET", "/api/usage");
      rows("usage", u.usage, (r) => [r.member_name, r.sessions, duration(r.powered_seconds),
        duration(r.job_seconds), (r.filament_mm / 1000).toFixed(2) + " m"]);
    } catch (err) {
      rows("sessions", [], () => []);
      rows("usage", [], () => []);
      throw err;
    }
  }

  // A link cannot send the token: the file is fetched, then saved from a blob URL.
  async function download(path, fallbackName) {
    try {
      const r = await fetch(path, { headers: headers() });
      if (!r.ok) throw new Error(message(await r.json().catch(() => ({})), r));
      const blob = await r.blob();
      const disposition = r.headers.get("Content-Disposition") || "";
      const match = /filename="([^"]+)"/.exec(disposition);
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = match ? match[1] : fallbackName;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 5000);
    } catch (err) {
      fail(err);
    }
  }

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-csv]");
    if (b) download(b.dataset.csv, "export.csv");
  });

  // -- access list and lockout ----------------------------------------------------------------

  async function loadAccess() {
    const s = await api("GET", "/api/access");
    if (!s.enabled) {
      facts("list-facts", [["Access control", "not configured on this gateway"]]);
      $("lockout-now").textContent = "";
      return;
    }
    facts("list-facts", [
      ["Source", s.source], ["Generated", when(s.generated_at)],
      ["Age", s.age_seconds == null ? null : duration(s.age_seconds)],
      ["Members", s.members], ["Last error", s.last_error], ["Readers", s.readers.join(", ")],
      ["Inductions not yet synced", s.pending_inductions],
    ]);
    $("lockout-now").textContent = s.lockout
      ? "Locked out by " + s.lockout.by + ": " + s.lockout.reason
      : "The machine is not locked out.";
  }

  $("lockout-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", "/api/lockout", { reason: $("lockout-reason").value.trim() });
      $("lockout-form").reset();
      loadAccess();
    } catch (err) { fail(err); }
  });

  $("clear-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const by = $("clear-by").value.trim();
    try {
      await api("DELETE", "/api/lockout" + (by ? "?by=" + encodeURIComponent(by) : ""));
      loadAccess();
    } catch (err) { fail(err); }
  });

  // -- tokens -----------------------------------------------------------------------------------

  async function loadTokens() {
    const data = await api("GET", "/api/tokens");
    rows("tokens", data.tokens, (t) => [t.name, t.scope, when(t.created_at), when(t.last_used_at),
      button("Revoke", async () => {
        if (!confirm("Revoke " + t.name + "? It stops working at once.")) return;
        try { await api("DELETE", "/api/tokens/" + encodeURIComponent(t.name)); loadTokens(); } catch (err) { fail(err); }
      })]);
  }

  $("token-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const made = await api("POST", "/api/tokens", { name: $("token-name").value.trim(), scope: $("token-scope").value });
      const p = $("token-secret");
      p.textContent = "Token " + made.token.name + " (" + made.token.scope + "), shown once: " + made.secret;
      p.hidden = false;
      $("token-form").reset();
      loadTokens();
    } catch (err) { fail(err); }
  });

  // -- camera ------------------------------------------------------------------------------
  // An <img> cannot send the token either: each snapshot is fetched and shown from a blob
  // URL, the previous one released.  Only while the Camera tab is open and visible.

  const SNAPSHOT_MS = 2000;
  let cameraRun = 0;      // one refresh loop at a time: a new one ends the old
  let snapshotUrl = "";

  function stopCamera() {
    cameraRun++;
    const img = $("cam-snapshot");
    if (img) img.removeAttribute("src");
    if (snapshotUrl) URL.revokeObjectURL(snapshotUrl);
    snapshotUrl = "";
  }

  async function showSnapshot(run) {
    const caption = $("cam-caption");
    try {
      const r = await fetch("/api/camera/snapshot.jpg", { headers: headers() });
      if (!r.ok) {
        const data = await r.json().catch(() => ({}));
        if (r.status === 401) signOut("The token was refused: " + message(data, r));
        throw new Error(message(data, r));
      }
      const blob = await r.blob();
      if (run !== cameraRun) return;
      const old = snapshotUrl;
      snapshotUrl = URL.createObjectURL(blob);
      $("cam-snapshot").src = snapshotUrl;
      if (old) URL.revokeObjectURL(old);
      caption.textContent = "Taken at " + new Date().toLocaleTimeString();
    } catch (err) {
      if (run === cameraRun) caption.textContent = "No picture: " + err.message;
    }
  }

  function renderCameraStatus(s) {
    facts("cam-facts", [
      ["Camera", s.running ? "running (" + s.backend + ")" : "not running"],
      ["Error", s.error],
      ["Picture", s.width + " \u00d7 " + s.height + " at " + s.fps + " fps (" + s.measured_fps + " measured)"],
      ["Live viewers", s.viewers + " of at most " + s.max_viewers],
      ["Alerts", s.alerts.map((a) => a.message).join("; ") || "none"],
      ["Timelapse", s.timelapse.mode === "off" ? "off" : s.timelapse.mode +
        (s.timelapse.recording_job_id != null ? ", recording job " + s.timelapse.recording_job_id : "")],
    ]);
  }

  async function loadTimelapses() {
    const items = await api("GET", "/api/camera/timelapses");
    rows("timelapses", items, (t) => [t.job_id, t.file, t.error ? t.state + ": " + t.error : t.state,
      when(t.started_at), t.frames, t.size_bytes ? size(t.size_bytes) : null,
      t.video_url ? button("Download", () => download(t.video_url, "job-" + t.job_id + "-timelapse.mp4"))
        : ""]);
  }

  async function loadCamera() {
    stopCamera();
    const run = cameraRun;
    loadTimelapses().catch(fail);
    while (run === cameraRun && tab === "camera" && token) {
      if (document.visibilityState === "visible") {
        await showSnapshot(run);
        try {
          const s = await api("GET", "/api/camera/status");
          if (run === cameraRun) renderCameraStatus(s);
        } catch (err) {
          if (run === cameraRun) facts("cam-facts", [["Camera", err.message]]);
        }
      }
      await new Promise((res) => setTimeout(res, SNAPSHOT_MS));
    }
  }
  loaders.camera = loadCamera;

  if (token) signIn();
})();
