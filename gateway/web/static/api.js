// One way to call the gateway's JSON API, shared by the kiosk's and the admin page's
// scripts.  Load it before them (after words.js); it defines window.GatewayApi and
// nothing else.
//
//   GatewayApi.request(method, path, body, token)
//
// sends `body` (if given) as JSON, with `Authorization: Bearer <token>` when a token is
// given (the admin page; the kiosk is trusted by its address), and resolves to the
// answer's JSON.  An error answer rejects with an Error whose message is the gateway's
// own sentence (or the HTTP status), with `.code` (the gateway's error code, e.g.
// "interrupted_pending") and `.status` (the HTTP status) for callers that act on them.
"use strict";

(function () {
  async function request(method, path, body, token) {
    const opts = { method: method, headers: {} };
    if (token !== undefined) opts.headers.Authorization = "Bearer " + token;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    const data = await r.json().catch(() => ({}));
    if (!r.ok) {
      const error = data && data.error;
      const err = new Error((error && error.message) || r.status + " " + r.statusText);
      err.code = error && error.code;
      err.status = r.status;
      throw err;
    }
    return data;
  }

  window.GatewayApi = { request: request };
})();
