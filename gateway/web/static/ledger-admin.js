// Admin page: the usage ledger's public key and head (GET /api/ledger/key), shown
// once a token is signed in.  Kept apart from admin.js for an easy merge.
"use strict";

(function () {
  const KEY = "gateway-token";
  const POLL_MS = 3000;

  function fact(dl, name, value) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dd.style.wordBreak = "break-all";
    dl.append(dt, dd);
  }

  async function load() {
    const token = sessionStorage.getItem(KEY);
    if (token) {
      try {
        const r = await fetch("/api/ledger/key", {
          headers: { Authorization: "Bearer " + token, Accept: "application/json" },
        });
        if (r.status === 409) return;  // no ledger on this gateway
        if (r.ok) {
          const k = await r.json();
          const dl = document.getElementById("ledger-facts");
          dl.replaceChildren();
          fact(dl, "Public key (" + k.algorithm + ")", k.public_key);
          fact(dl, "Key id", k.key_id);
          fact(dl, "Records", String(k.records));
          fact(dl, "Newest record's hash", k.head_hash || "\u2013");
          if (k.broker_conflict) fact(dl, "Broker copy stopped", k.broker_conflict);
          document.getElementById("ledger-box").hidden = false;
        }
      } catch (e) {
        // The gateway is restarting; try again below.
      }
    }
    setTimeout(load, POLL_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", load);
  else load();
})();
