// Admin page, "Member keys" tab: members' slicer keys (create, revoke) and the record
// of their jobs.  admin.js calls window.slicerAdmin.load when the tab opens.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  const api = (method, path, body) => window.GatewayApi.request(
    method, path, body, sessionStorage.getItem("gateway-token") || "");

  function when(t) {
    return t ? new Date(t * 1000).toLocaleString() : "never";
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = c;
      tr.appendChild(td);
    }
    return tr;
  }

  async function load() {
    const keys = (await api("GET", "/api/slicer/keys")).keys;
    const body = $("member-keys");
    body.textContent = "";
    for (const k of keys) {
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.textContent = "Revoke";
      revoke.addEventListener("click", async () => {
        await api("DELETE", "/api/slicer/keys/" + encodeURIComponent(k.member_id));
        await load();
      });
      body.appendChild(row([k.member_id, k.member_name, k.label, when(k.created_at),
        when(k.last_used_at), revoke]));
    }
    const jobs = (await api("GET", "/api/slicer/usage")).jobs;
    const jb = $("member-jobs");
    jb.textContent = "";
    for (const j of jobs) {
      jb.appendChild(row([j.member_name + " (" + j.member_id + ")", j.display_name, j.door,
        when(j.uploaded_at), j.state, j.released_by || ""]));
    }
  }

  $("member-key-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const secret = $("member-key-secret");
    try {
      const made = await api("POST", "/api/slicer/keys", {
        member_id: $("member-key-id").value.trim(),
        member_name: $("member-key-name").value.trim(),
      });
      secret.textContent = "Key for " + made.member_name + " (shown once): " + made.key;
      secret.hidden = false;
      $("member-key-form").reset();
      await load();
    } catch (err) {
      secret.textContent = err.message;
      secret.hidden = false;
    }
  });

  window.slicerAdmin = { load: load };
})();
