// NUT Bridge status page: keeps the server-rendered page live (no reload needed).
// Follows /api/live (Server-Sent Events: snapshot, ups, history, devices), redraws the
// last-hour charts and sends command/SET forms to the JSON API. The page works without it.
"use strict";

(function () {
  const WINDOW = 3600;
  const MIN_SPAN = 60;
  const EVENTS_SHOWN = 50;
  const SVG = "http://www.w3.org/2000/svg";
  const cards = new Map(); // UPS name -> its <article>
  const series = new Map(); // UPS name -> [[t, charge, load, ...], ...]
  const fetched = new Set();
  let clockOffset = 0; // server time - browser time, seconds
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.getAttribute("content") : null;

  const STATE_TEXT = {
    stale: "Data stale: the values shown are the last ones received",
    offline: "Offline: the driver is not connected",
    wait: "Waiting for the first data from the driver",
  };

  function now() { return Date.now() / 1000 + clockOffset; }

  function fmtNumber(v, unit, digits) {
    if (v === null || v === undefined) return "\u2014";
    const text = Number(v).toFixed(digits || 0);
    return unit ? text + " " + unit : text;
  }

  function fmtRuntime(v) {
    if (v === null || v === undefined) return "\u2014";
    const s = Math.trunc(v);
    if (s < 60) return s + " s";
    const m = Math.trunc(s / 60);
    const h = Math.trunc(m / 60);
    const mm = m % 60;
    return h ? h + " h " + String(mm).padStart(2, "0") + " min" : mm + " min";
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function fmtTs(ts) {
    const d = new Date(ts);
    if (isNaN(d.getTime())) return ts;
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function field(card, name) { return card.querySelector('[data-f="' + name + '"]'); }

  function setText(card, name, text) {
    const el = field(card, name);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function update(s) {
    const card = cards.get(s.name);
    if (!card) return false;
    for (const cls of Array.from(card.classList)) {
      if (cls.startsWith("sev-") && cls !== "sev-" + s.severity) card.classList.remove(cls);
    }
    card.classList.add("sev-" + s.severity);
    setText(card, "status_text", s.status_text);
    setText(card, "status", s.status);
    const note = field(card, "state_note");
    if (note) {
      const text = STATE_TEXT[s.state] || "";
      note.textContent = text;
      note.hidden = !text;
    }
    setText(card, "charge", fmtNumber(s.charge, "%", 0));
    setText(card, "runtime", fmtRuntime(s.runtime));
    setText(card, "load", fmtNumber(s.load, "%", 0));
    setText(card, "input_voltage", fmtNumber(s.input_voltage, "V", 1));
    setText(card, "output_voltage", fmtNumber(s.output_voltage, "V", 1));
    const meter = field(card, "charge-meter");
    if (meter) {
      meter.hidden = s.charge === null || s.charge === undefined;
      if (!meter.hidden) meter.value = s.charge;
    }
    if (s.point) {
      const pts = series.get(s.name);
      if (pts) {
        pts.push(s.point);
        draw(s.name);
      }
    }
    return true;
  }

  function overview() {
    const words = [["ok", "ok"], ["warn", "attention"], ["alarm", "alarm"], ["stale", "stale"],
      ["offline", "offline"], ["wait", "waiting"], ["unknown", "no status"]];
    const counts = {};
    for (const card of cards.values()) {
      for (const cls of card.classList) {
        if (cls.startsWith("sev-")) counts[cls.slice(4)] = (counts[cls.slice(4)] || 0) + 1;
      }
    }
    const parts = words.filter(([k]) => counts[k]).map(([k, w]) => counts[k] + " " + w);
    const el = document.getElementById("overview");
    if (el) el.textContent = cards.size + " UPS" + (parts.length ? ": " + parts.join(", ") : "");
  }

  // ---- charts ---------------------------------------------------------------------------
  function span(pts, t0) {
    // the last hour, or less while the bridge has less (at least a minute): as page.py
    return pts.length ? Math.min(WINDOW, Math.max(MIN_SPAN, t0 - pts[0][0])) : WINDOW;
  }

  function draw(name) {
    const card = cards.get(name);
    const svg = card && card.querySelector("svg.chart");
    const pts = series.get(name);
    if (!svg || !pts) return;
    const t0 = now();
    while (pts.length && pts[0][0] < t0 - WINDOW) pts.shift();
    const width = span(pts, t0);
    setText(card, "chart_caption", width >= WINDOW ? "Last hour" : "Last " + Math.max(1, Math.round(width / 60)) + " min");
    for (const [key, col] of [["charge", 1], ["load", 2]]) {
      const coords = [];
      for (const row of pts) {
        const v = row[col];
        if (v === null || v === undefined) continue;
        const x = Math.max(0, 360 - (t0 - row[0]) / width * 360);
        const y = 95 - Math.max(0, Math.min(100, v)) * 0.9;
        coords.push(x.toFixed(1) + "," + y.toFixed(1));
      }
      // hold the last value up to now: a steady UPS still draws a line
      if (coords.length) coords.push("360.0," + coords[coords.length - 1].split(",")[1]);
      let line = svg.querySelector("polyline.l-" + key);
      if (!line) {
        line = document.createElementNS(SVG, "polyline");
        line.setAttribute("class", "l-" + key);
        svg.appendChild(line);
      }
      line.setAttribute("points", coords.join(" "));
    }
  }

  function loadSeries(name) {
    if (fetched.has(name)) return;
    fetched.add(name);
    fetch("/api/ups/" + encodeURIComponent(name) + "/history", { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((body) => {
        if (!body) return;
        if (typeof body.now === "number") clockOffset = body.now - Date.now() / 1000;
        series.set(name, body.points || []);
        draw(name);
      })
      .catch(() => fetched.delete(name));
  }

  // ---- events ------------------------------------------------------------------------------
  function eventRow(rec) {
    const tr = document.createElement("tr");
    tr.className = "ev-" + (rec.kind || "");
    tr.dataset.seq = String(rec.seq);
    const cells = [fmtTs(rec.ts || ""), rec.ups || "", rec.detail || ""];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === 2 && rec.user) {
        const by = document.createElement("span");
        by.className = "by";
        by.textContent = " (" + rec.user + ")";
        td.appendChild(by);
      }
      tr.appendChild(td);
    });
    return tr;
  }

  function addEvent(rec) {
    const body = document.getElementById("events");
    if (!body || body.querySelector('tr[data-seq="' + rec.seq + '"]')) return;
    body.insertBefore(eventRow(rec), body.firstChild);
    while (body.rows.length > EVENTS_SHOWN) body.deleteRow(body.rows.length - 1);
  }

  function setEvents(list) {
    const body = document.getElementById("events");
    if (!body) return;
    body.replaceChildren(...list.slice().reverse().map(eventRow));
  }

  // ---- the live stream -------------------------------------------------------------------
  function live(on, text) {
    const el = document.getElementById("live");
    if (!el) return;
    el.classList.toggle("on", on);
    el.classList.toggle("off", !on);
    el.textContent = text;
  }

  function connect() {
    if (!window.EventSource) return;
    const es = new EventSource("/api/live");
    es.addEventListener("open", () => live(true, "live"));
    es.addEventListener("error", () => live(false, es.readyState === EventSource.CLOSED ? "offline" : "reconnecting\u2026"));
    es.addEventListener("snapshot", (e) => {
      const data = JSON.parse(e.data);
      if (typeof data.now === "number") clockOffset = data.now - Date.now() / 1000;
      const names = new Set(data.ups.map((s) => s.name));
      if (names.size !== cards.size || data.ups.some((s) => !cards.has(s.name))) {
        window.location.reload(); // UPSes were added or removed while we were away
        return;
      }
      data.ups.forEach(update);
      setEvents(data.events || []);
      overview();
    });
    es.addEventListener("ups", (e) => {
      if (update(JSON.parse(e.data))) overview();
    });
    es.addEventListener("history", (e) => addEvent(JSON.parse(e.data)));
    es.addEventListener("devices", () => window.location.reload());
  }

  // ---- actions -------------------------------------------------------------------------------
  function showResult(form, text, ok) {
    const card = form.closest("article.ups");
    const out = card && card.querySelector("output.result");
    if (!out) return;
    out.textContent = text;
    out.classList.toggle("error", !ok);
  }

  function onSubmit(e) {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("act") || !csrf) return;
    e.preventDefault();
    const card = form.closest("article.ups");
    const name = card.dataset.ups;
    const data = new FormData(form);
    let url, payload, what;
    if (form.dataset.kind === "command") {
      const cmd = e.submitter && e.submitter.value;
      if (!cmd) return;
      payload = { command: cmd };
      const param = data.get("param");
      if (param) payload.param = param;
      url = "/api/ups/" + encodeURIComponent(name) + "/command";
      what = cmd;
    } else {
      payload = { var: data.get("var"), value: data.get("value") };
      url = "/api/ups/" + encodeURIComponent(name) + "/set";
      what = payload.var + " = " + payload.value;
    }
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    showResult(form, what + ": sending\u2026", true);
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(payload),
    })
      .then((r) => r.json().then((body) => [r, body]))
      .then(([r, body]) => {
        if (r.ok) {
          const res = body.result === "PENDING" ? "sent, no result from the driver yet" : "done";
          showResult(form, what + ": " + res, true);
        } else {
          showResult(form, what + ": " + (body.message || "refused") + " (" + (body.error || r.status) + ")", false);
        }
      })
      .catch((err) => showResult(form, what + ": " + err, false))
      .finally(() => buttons.forEach((b) => { b.disabled = false; }));
  }

  // ---- start -----------------------------------------------------------------------------------
  function start() {
    document.querySelectorAll("article.ups").forEach((card) => cards.set(card.dataset.ups, card));
    if ("IntersectionObserver" in window) {
      const io = new IntersectionObserver((entries) => {
        for (const en of entries) {
          if (en.isIntersecting) {
            loadSeries(en.target.dataset.ups);
            io.unobserve(en.target);
          }
        }
      });
      cards.forEach((card) => io.observe(card));
    } else {
      cards.forEach((_, name) => loadSeries(name));
    }
    document.addEventListener("submit", onSubmit);
    setInterval(() => series.forEach((_, name) => draw(name)), 10000);
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
