/* Sends the lead form with fetch and shows the function's JSON answer on the page.
   Without JavaScript (or with ?nojs=1 in the page's URL) the form posts itself and the function
   answers 303 to gracias.html or error.html. */
"use strict";

(function () {
  var form = document.getElementById("lead-form");
  var params = new URLSearchParams(window.location.search);
  if (!form || params.get("nojs") === "1") {
    return; // plain form post, as with JavaScript off
  }
  var mensajes = window.FORMCALL_MENSAJES || {};
  var status = document.getElementById("form-status");
  var button = form.querySelector("button[type=submit]");
  // The function URL: ?endpoint= in the page's URL, else the form's data-endpoint.
  var endpoint = params.get("endpoint") || form.dataset.endpoint || form.action;
  form.action = endpoint; // keeps a plain post (should this script fail later) on the same URL

  function show(kind, text, answer) {
    status.hidden = false;
    status.className = "status status-" + kind;
    status.dataset.kind = kind;
    status.dataset.error = answer && answer.error ? answer.error : "";
    status.textContent = text;
  }

  function describe(httpStatus, answer) {
    if (answer && answer.success === true) {
      return answer.pending
        ? ["ok", "¡Listo! Recibimos tus datos y te llamaremos apenas un ejecutivo quede libre."]
        : ["ok", "¡Listo! Te llamaremos en segundos."];
    }
    var word = answer && typeof answer.error === "string" ? answer.error : "";
    if (httpStatus === 429 || httpStatus >= 500) {
      // Worth retrying: the function asks for it with Retry-After (not readable across origins).
      return ["retry", mensajes[word] && httpStatus === 429 ? mensajes[word] : mensajes.reintentar];
    }
    var text = mensajes[word] || (answer && answer.message) || mensajes.generico;
    return ["error", text];
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    // Every field goes along: the honeypot (so the function can spot bots) and, when the
    // Turnstile widget is on the page, its cf-turnstile-response token.
    var data = Object.fromEntries(new FormData(form).entries());
    button.disabled = true;
    button.dataset.label = button.dataset.label || button.textContent;
    button.textContent = "Enviando…";
    fetch(endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(data)
    })
      .then(function (response) {
        return response.json().then(
          function (answer) { return [response.status, answer]; },
          function () { return [response.status, null]; }
        );
      })
      .then(function (result) {
        var shown = describe(result[0], result[1]);
        show(shown[0], shown[1], result[1]);
        if (shown[0] === "ok") {
          form.reset();
        }
      })
      .catch(function () {
        // A network failure, or an answer without CORS headers (origin not in cors_origins).
        show("retry", mensajes.sin_conexion, null);
      })
      .finally(function () {
        button.disabled = false;
        button.textContent = button.dataset.label;
      });
  });
})();
