/* Sends the lead form with fetch and shows the function's JSON answer on the page.
   Without JavaScript (or with ?nojs=1 in the page's URL) the form posts itself and the function
   answers 303 to gracias.html or error.html. ?endpoint=URL names the function for one visit, both ways. */
"use strict";

(function () {
  var form = document.getElementById("lead-form");
  if (!form) {
    return;
  }
  var params = new URLSearchParams(window.location.search);

  // Where the visit came from, from the page's URL into the form's hidden inputs (the route puts them in
  // FormCall's `adicional`). Set as the value attribute, so form.reset() after a success keeps them.
  ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid", "fbclid"].forEach(
    function (name) {
      var input = form.querySelector("input[type=hidden][name=" + name + "]");
      var value = params.get(name);
      if (input && value) {
        input.setAttribute("value", value.slice(0, 200));
      }
    }
  );
  // Meta's click and browser ids, as its pixel keeps them in the _fbc and _fbp cookies (when the page has
  // the pixel): the function sends them to Meta only for a lead who ticked the ads consent box.
  document.cookie.split(";").forEach(function (pair) {
    var eq = pair.indexOf("=");
    var name = pair.slice(0, eq).trim();
    if (name === "_fbc" || name === "_fbp") {
      var input = form.querySelector("input[type=hidden][name=" + name + "]");
      var value = decodeURIComponent(pair.slice(eq + 1).trim());
      if (input && value) {
        input.setAttribute("value", value.slice(0, 200));
      }
    }
  });

  // The function URL: ?endpoint= in the page's URL (an http or https URL only: it becomes the form's
  // action), else the form's data-endpoint. The plain post uses it too: ?nojs=1, or should this script
  // fail later.
  function httpUrl(value) {
    try {
      var url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : "";
    } catch (error) {
      return "";
    }
  }
  var endpoint = httpUrl(params.get("endpoint") || "") || form.dataset.endpoint || form.action;
  form.action = endpoint;

  if (params.get("nojs") === "1") {
    return; // plain form post, as with JavaScript off
  }
  var mensajes = window.FORMCALL_MENSAJES || {};
  var status = document.getElementById("form-status");
  var button = form.querySelector("button[type=submit]");
  // Google Tag Manager and gtag.js read this array; it works (and does nothing) without them.
  window.dataLayer = window.dataLayer || [];

  function show(kind, text, answer, result) {
    status.hidden = false;
    status.className = "status status-" + kind;
    status.dataset.kind = kind;
    status.dataset.result = result || "";
    status.dataset.error = answer && answer.error ? answer.error : "";
    status.textContent = text;
  }

  // What a success means: ringing now, queued at FormCall, kept to call later, or a repeat.
  function result(answer) {
    if (answer.duplicate) {
      return "duplicate";
    }
    if (answer.scheduled) {
      return "scheduled";
    }
    return answer.pending ? "pending" : "placed";
  }

  var SUCCESS_TEXT = { placed: "listo", pending: "pendiente", scheduled: "programada", duplicate: "duplicada" };

  // A success is about the lead just sent: it leaves when the form is reset or a new lead is typed in.
  // An error stays while the person fixes what it names.
  function clearSuccess() {
    if (status.dataset.kind === "ok") {
      status.hidden = true;
      status.textContent = "";
      status.dataset.kind = "";
      status.dataset.result = "";
    }
  }
  form.addEventListener("reset", clearSuccess);
  form.addEventListener("input", clearSuccess);

  function describe(httpStatus, answer) {
    if (answer && answer.success === true) {
      var kind = result(answer);
      return ["ok", mensajes[SUCCESS_TEXT[kind]], kind];
    }
    var word = answer && typeof answer.error === "string" ? answer.error : "";
    if (httpStatus === 429 || httpStatus >= 500) {
      // Worth retrying: the function asks for it with Retry-After (not readable across origins).
      return ["retry", mensajes[word] && httpStatus === 429 ? mensajes[word] : mensajes.reintentar, ""];
    }
    var text = mensajes[word] || (answer && answer.message) || mensajes.generico;
    return ["error", text, ""];
  }

  // One conversion per lead for Google Ads and GA4: a new lead has a lead_id; a duplicate was already
  // counted, and a honeypot answer (a bot) has none. Never the number, the name or the email.
  function convert(answer, kind) {
    if (kind === "duplicate" || typeof answer.lead_id !== "string") {
      return;
    }
    window.dataLayer.push({
      event: "generate_lead",
      form_id: form.id,
      lead_id: answer.lead_id,
      transaction_id: answer.lead_id, // lets Google Ads drop a conversion counted twice
      lead_status: kind
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    // Every field goes along: the consent box (absent when unchecked), the campaign fields, the honeypot
    // (so the function can spot bots) and, when the Turnstile widget is on the page, its token.
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
      .then(function (outcome) {
        var shown = describe(outcome[0], outcome[1]);
        if (shown[0] === "ok") {
          form.reset(); // first: the reset takes the previous success away, then this one is shown
          convert(outcome[1], shown[2]);
        }
        show(shown[0], shown[1], outcome[1], shown[2]);
      })
      .catch(function () {
        // A network failure, or an answer without CORS headers (origin not in cors_origins).
        show("retry", mensajes.sin_conexion, null, "");
      })
      .finally(function () {
        button.disabled = false;
        button.textContent = button.dataset.label;
      });
  });
})();
