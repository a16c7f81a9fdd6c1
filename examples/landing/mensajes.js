/* Sentences for the function's answers, shared by app.js (fetch answers) and error.html (?error=).
   Successes by kind (listo, pendiente, programada, duplicada), failures by the function's `error` word.
   The function's own `message` is English; a word missing here falls back to it.
   Name no hours here unless formcall.toml's retry.service_hours sets them, and then the same ones
   (tests/test_landing_browser.py holds the pages to the config). */
"use strict";

window.FORMCALL_MENSAJES = {
  // 200 success: the call is ringing now (uuid), queued at FormCall (pending), kept by the function to call
  // later (scheduled), or the same request again (duplicate: nobody is called twice).
  listo: "¡Listo! Te estamos llamando: ten tu teléfono a mano.",
  pendiente: "¡Listo! Recibimos tus datos y te llamaremos apenas un ejecutivo quede libre.",
  programada: "¡Recibido! En este momento no pudimos conectarte con un ejecutivo: te llamaremos apenas haya uno disponible.",
  duplicada: "Ya habíamos recibido tu solicitud: te llamaremos una sola vez, no hace falta enviarla de nuevo.",

  phone_missing: "Escribe tu número de teléfono para que podamos llamarte.",
  invalid_phone: "Ese número de teléfono no parece válido. Escríbelo como +56 9 1234 5678.",
  region_not_allowed: "Por ahora solo llamamos a números de Chile.",
  number_type_not_allowed: "No podemos llamar a ese tipo de número. Déjanos un celular o un teléfono fijo.",
  consent_missing: "Para llamarte necesitamos tu autorización: marca la casilla de aceptación y envía de nuevo.",
  opted_out: "Este número pidió no recibir nuestras llamadas. Si cambiaste de opinión, escríbenos a privacidad@acmeseguros.cl.",
  captcha_failed: "No pudimos verificar que no eres un robot. Recarga la página e inténtalo de nuevo.",
  out_of_service_hours: "Nuestros ejecutivos no están disponibles en este momento. Inténtalo de nuevo más tarde.",
  rate_limited: "Recibimos muchos intentos seguidos. Espera un minuto e inténtalo de nuevo.",
  formcall_rejected: "No pudimos programar la llamada a ese número. Revisa que esté bien escrito.",
  // 5xx: the call was not placed and a retry is safe (the function never rings a lead twice).
  formcall_unavailable: "No pudimos conectar la llamada en este momento. Inténtalo de nuevo en un minuto.",
  origination_failed: "No pudimos conectar la llamada en este momento. Inténtalo de nuevo en un minuto.",
  reintentar: "No pudimos conectar la llamada en este momento. Inténtalo de nuevo en un minuto.",
  sin_conexion: "No pudimos enviar tus datos. Revisa tu conexión e inténtalo de nuevo.",
  generico: "No pudimos registrar tu solicitud. Inténtalo de nuevo en unos minutos."
};
