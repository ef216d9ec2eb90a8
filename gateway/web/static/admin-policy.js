// Admin pages, the access policy: who is about to lapse on this machine, and its bookings
// (list, book, cancel).  Kept apart from admin.js; it adds its own blocks to the Access
// tab and loads them whenever that tab is shown.  Requests carry the tab's token.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const tab = $("tab-access");
  if (!tab) return;

  const block = document.createElement("div");
  block.id = "policy-admin";
  block.innerHTML = `
    <h2>Inductions about to lapse</h2>
    <p id="lapsing-rule"></p>
    <table><thead><tr><th>Member</th><th>Lapses</th><th>Days left</th></tr></thead>
      <tbody id="lapsing"></tbody></table>
    <h2>Bookings</h2>
    <table><thead><tr><th>Member</th><th>From</th><th>Until</th><th>Made by</th><th></th></tr></thead>
      <tbody id="bookings"></tbody></table>
    <form id="booking-form">
      <label>Member id <input id="booking-member" type="text" maxlength="64" required></label>
      <label>From <input id="booking-start" type="datetime-local" required></label>
      <label>Until <input id="booking-end" type="datetime-local" required></label>
      <button type="submit">Book</button>
    </form>
    <p id="booking-error" class="error" hidden></p>`;
  tab.appendChild(block);

  const call = (method, path, body) => window.GatewayApi.request(
    method, path, body, sessionStorage.getItem("gateway-token") || "");

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text == null ? "\u2013" : String(text);
    row.appendChild(td);
    return td;
  }

  function local(iso) {
    return iso ? new Date(iso).toLocaleString() : null;
  }

  async function load() {
    let lapsing = null;
    let bookings = null;
    try {
      [lapsing, bookings] = await Promise.all([
        call("GET", "/api/access/lapsing?days=30"), call("GET", "/api/bookings"),
      ]);
    } catch (err) {
      $("lapsing-rule").textContent = err.message;
      return;
    }
    $("lapsing-rule").textContent = lapsing.rule === "never"
      ? "Inductions on this machine never lapse ([access.policy.expiry] rule = \"never\")."
      : "Rule: " + lapsing.rule + "; lapsed or lapsing within " + lapsing.days + " days.";
    const lt = $("lapsing");
    lt.textContent = "";
    for (const m of lapsing.members) {
      const tr = document.createElement("tr");
      cell(tr, m.member_name + " (" + m.member_id + ")");
      cell(tr, m.unknown ? "no date on record" : local(m.lapses_at));
      cell(tr, m.lapsed ? "lapsed" : m.days_left);
      lt.appendChild(tr);
    }
    const bt = $("bookings");
    bt.textContent = "";
    for (const b of bookings.bookings) {
      const tr = document.createElement("tr");
      cell(tr, b.member_name + " (" + b.member_id + ")");
      cell(tr, local(b.start));
      cell(tr, local(b.end));
      cell(tr, b.source);
      const td = cell(tr, "");
      if (b.source !== "list") {
        const x = document.createElement("button");
        x.type = "button";
        x.textContent = "Cancel";
        x.addEventListener("click", async () => {
          try { await call("DELETE", "/api/bookings/" + encodeURIComponent(b.id)); } catch (err) { showError(err); }
          load();
        });
        td.appendChild(x);
      }
      bt.appendChild(tr);
    }
  }

  function showError(err) {
    $("booking-error").textContent = err.message;
    $("booking-error").hidden = false;
  }

  $("booking-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("booking-error").hidden = true;
    const iso = (id) => new Date($(id).value).toISOString();
    try {
      await call("POST", "/api/bookings", {
        member_id: $("booking-member").value.trim(), start: iso("booking-start"), end: iso("booking-end"),
      });
    } catch (err) {
      showError(err);
    }
    load();
  });

  new MutationObserver(() => { if (!tab.hidden) load(); })
    .observe(tab, { attributes: true, attributeFilter: ["hidden"] });
  if (!tab.hidden) load();
})();
