// The gateway's words: one glossary of what members and admins read, and the date,
// duration and temperature formats, shared by the kiosk, the admin page and any other
// script on them (resume.js, slicer.js, ...).  Load it before them; it defines
// window.Words and nothing else.
//
// Dates are shown in the space's time zone: `[site] timezone` in the config, handed to
// the page as <body data-timezone="Europe/London">; without it, the screen's own zone.
"use strict";

(function () {
  const zone = (document.body && document.body.dataset.timezone) || undefined;

  // -- the glossary ---------------------------------------------------------------------

  // The machine's state, as the header of the touchscreen says it.
  const MACHINE = {
    disconnected: "Controller not connected",
    connecting: "Connecting to the controller",
    idle: "Ready",
    running: "Running a job",
    printing: "Printing",
    paused: "Paused",
    error: "Stopped: controller problem",
    estop: "EMERGENCY STOP",
    offline: "Gateway offline",
  };

  // The access capability's state (gateway/access/session.py).
  const ACCESS = {
    locked: "Waiting for a badge",
    authorised: "In use (no job)",
    in_use: "Running a job",
    ending: "Session ending",
    lockout: "Out of service",
  };

  // Why a badge was refused, when the gateway gave no sentence of its own.
  const DENIAL = {
    unknown_badge: "Badge not recognised. Ask staff to register it.",
    suspended: "Your membership is suspended. Please speak to staff.",
    not_yet_valid: "Your access has not started yet.",
    expired: "Your membership has ended. Renew it to use the machines.",
    not_inducted: "You are not inducted on this machine. Ask a trainer.",
    locked_out: "The machine is out of service. Only a maintainer can use it.",
    rate_limited: "Too many tries. Wait a minute, then badge again.",
    interlock: "A safety guard is open. Close it, then badge again.",
    in_use: "Someone else is using the machine. Wait until they badge out.",
  };

  // Why a session ended.
  const SESSION_END = {
    badge_out: "Badged out.",
    idle_timeout: "Session ended: no job for a while.",
    max_session: "Session ended: the longest session time was reached.",
    lockout: "Session ended: the machine was taken out of service.",
    interlock: "Session ended: a safety guard was opened.",
    estop: "Session ended by the emergency stop.",
    takeover: "Handed over after an induction.",
    shutdown: "Session ended: the gateway was switched off.",
    revoked: "Session ended: the access list no longer allows it.",
    admin_cut: "Power was cut by an administrator.",
    handover: "Handed over to the member you supervise.",
    booked: "Session ended: a member's booking has started.",
    supervisor_left: "Session ended: no supervisor was present.",
    alone: "Session ended: this machine needs two members in the space.",
  };

  // How a job ended.
  const OUTCOME = {
    completed: "finished",
    cancelled: "cancelled",
    failed: "failed",
    estop: "stopped by the emergency stop",
    running: "running",
    paused: "paused",
    queued: "waiting to start",
  };

  // Where a job or command came from: the "door" it came in by.
  const DOOR = {
    kiosk: "touchscreen",
    web: "admin page / API",
    slicer: "slicer",
    usb: "USB stick",
    cli: "command line",
    mqtt: "MQTT",
    internal: "the gateway",
  };

  // What the machine should do next, in the member's words.
  const ADVICE = {
    estop_kiosk: "Check the machine is safe, then tap Clear the stop.",
    estop_locked: "Check the machine is safe, then badge in to clear the stop.",
    controller: "Check the machine, then tap Clear the stop to reconnect it.",
    unplugged: "Check its USB cable and that it is switched on.",
    offline: "It stays off until the gateway is back: nothing you tap on this screen reaches it.",
  };

  // A member's role on this machine.
  const ROLE = { user: "Member", trainer: "Trainer", maintainer: "Maintainer" };

  const SENSOR = { T: "Nozzle", T0: "Nozzle", T1: "Nozzle 2", B: "Bed", C: "Chamber" };

  // -- formats --------------------------------------------------------------------------

  function toDate(t) {
    if (t == null || t === "") return null;
    const d = new Date(typeof t === "number" ? t * 1000 : t);
    return isNaN(d.getTime()) ? null : d;
  }

  function format(t, options) {
    const d = toDate(t);
    if (!d) return "\u2013";
    try {
      return new Intl.DateTimeFormat(undefined, Object.assign({ timeZone: zone }, options)).format(d);
    } catch (err) {  // an unknown zone name: the screen's own zone rather than nothing
      return new Intl.DateTimeFormat(undefined, options).format(d);
    }
  }

  // "30 Nov 2026, 14:05" in the space's time zone.
  const dateTime = (t) => format(t, { day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  // "14:05:09"
  const time = (t) => format(t, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  // "14:05"
  const clock = (t) => format(t, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  // "30 Nov 2026"
  const day = (t) => format(t, { day: "numeric", month: "short", year: "numeric" });

  function duration(s) {
    if (s == null || !isFinite(s)) return "\u2013";
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h) return h + " h " + String(m).padStart(2, "0") + " min";
    if (m) return m + " min " + String(sec).padStart(2, "0") + " s";
    return sec + " s";
  }

  // "Nozzle 28 / 200 \u00b0C"; without a target "Nozzle 28 \u00b0C".
  function temperature(sensor, pair) {
    const name = SENSOR[sensor] || sensor;
    const now = Math.round(pair[0]);
    return name + " " + now + (pair[1] ? " / " + Math.round(pair[1]) : "") + " \u00b0C";
  }

  // "Ada L." - a member's first name and initial, enough to recognise them on a list.
  function shortName(name) {
    if (!name) return "";
    const parts = String(name).trim().split(/\s+/);
    return parts.length > 1 ? parts[0] + " " + parts[parts.length - 1][0] + "." : parts[0];
  }

  const machine = (state) => MACHINE[state] || state;
  const access = (state) => ACCESS[state] || state;
  const denial = (reason, message) => message || DENIAL[reason] || "Refused.";
  const sessionEnd = (reason) => SESSION_END[reason] || "Session ended.";
  const outcome = (state) => OUTCOME[state] || state;
  const role = (r) => (r ? ROLE[r] || r : "");
  const door = (origin) => (origin ? DOOR[origin] || origin : "\u2013");

  window.Words = {
    MACHINE, ACCESS, DENIAL, SESSION_END, OUTCOME, DOOR, ADVICE, ROLE, SENSOR, zone,
    toDate, dateTime, time, clock, day, duration, temperature, shortName,
    machine, access, denial, sessionEnd, outcome, door, role,
  };
})();
