// The dashboard: the box at a glance, polled once a second. Built with
// elements and textContent, never markup from data: stream names, egress
// ids and URLs, errors and encoder output are anyone's strings.
"use strict";

const pollMS = 1000;
const windowMS = 3 * 60 * 1000; // the bitrate plot's span
const plotW = 600, plotH = 150, plotTop = 16, plotBottom = 16;

const byId = (id) => document.getElementById(id);
byId("whip").textContent = location.origin + "/whip/{name}";

const cards = new Map(); // stream name → its card (elements and samples)
let lastOK = 0; // when the server last answered
let polls = 0;
let tokenPrompted = false;

// getJSON fetches one document; it throws only when the server cannot be
// reached.
async function getJSON(path, auth) {
  const res = await fetch(path, { headers: auth ? authHeaders() : {}, cache: "no-store" });
  let body = null;
  try { body = await res.json(); } catch (e) {}
  return { status: res.status, ok: res.ok, body };
}

async function poll() {
  const now = Date.now();
  let ready, info, streams, sessions, egress, encoder = null;
  try {
    [ready, info, streams, sessions, egress] = await Promise.all([
      getJSON("/readyz", false), getJSON("/api/v1/info", true), getJSON("/api/v1/streams", true),
      getJSON("/api/v1/sessions", true), getJSON("/api/v1/egress", true),
    ]);
    // /api/v1/encoder answers 404 without an encoder: ask only when
    // /info says there is one.
    if (info.ok && info.body.features && info.body.features.encoder) encoder = await getJSON("/api/v1/encoder", true);
  } catch (e) {
    renderConn(false);
    return;
  }
  lastOK = Date.now();
  renderConn(true);
  renderReady(ready);
  renderAccess([info, streams, sessions, egress]);
  if (info.ok) renderInfo(info.body);
  if (streams.ok && sessions.ok) renderStreams(streams.body.streams || [], sessions.body.sessions || [], now);
  if (egress.ok) renderEgress(egress.body.egress || []);
  if (info.ok) renderEncoder(info.body.features && info.body.features.encoder, encoder);
  polls++;
  window.whipgateDashboard = { polls, lastOK };
}

function loop() {
  const started = Date.now();
  poll().finally(() => setTimeout(loop, Math.max(100, pollMS - (Date.now() - started))));
}

function renderConn(ok) {
  const c = byId("conn");
  document.body.classList.toggle("stale", !ok);
  if (ok) {
    c.textContent = "live · every second";
    c.className = "conn ok";
  } else {
    c.textContent = lastOK ? "server unreachable; last answer " + fmtDuration((Date.now() - lastOK) / 1000) + " ago" : "server unreachable";
    c.className = "conn err";
  }
}

function renderReady(r) {
  const sec = byId("ready");
  const list = byId("not-ready");
  const doc = r.body || {};
  if (typeof doc.ready !== "boolean") {
    sec.className = "ready bad";
    byId("ready-state").textContent = "readiness unknown (" + r.status + ")";
    list.replaceChildren();
    return;
  }
  const checks = doc.checks || [];
  sec.className = "ready " + (doc.ready ? "ok" : "bad");
  byId("ready-state").textContent = doc.ready
    ? (checks.length ? "ready: " + checks.length + " of " + checks.length + " checks pass" : "ready")
    : "not ready";
  list.replaceChildren(...(doc.not_ready || []).map((line) => el("li", null, line)));
}

// renderAccess says what to do when the API refuses us; what the page
// showed before is dimmed, as it is no longer current.
function renderAccess(answers) {
  const msg = byId("msg");
  const input = byId("token");
  const denied = answers.find((a) => a.status === 401 || a.status === 403) || answers.find((a) => !a.ok);
  input.classList.toggle("need", !!denied && denied.status === 401);
  document.body.classList.toggle("stale", !!denied);
  if (denied) {
    byId("conn").textContent = "the API answers " + denied.status;
    byId("conn").className = "conn err";
  }
  if (!denied) {
    msg.hidden = true;
    tokenPrompted = false;
    return;
  }
  const detail = (denied.body && denied.body.detail) || "";
  msg.textContent = denied.status === 401
    ? "401: enter the API token (the server's api_token) to see streams, viewers, egress and the encoder"
    : denied.status + ": " + detail;
  msg.hidden = false;
  if (denied.status === 401 && !tokenPrompted) {
    tokenPrompted = true;
    input.focus();
  }
}

// fact is one term of a <dl>: a <div> with its <dt> and <dd>.
function fact(k, v, cls) {
  return el("div", null, el("dt", null, k), el("dd", cls ? { className: cls } : null, v));
}

function renderInfo(info) {
  const f = info.features || {};
  const rows = [];
  let build = info.version || "?";
  if (info.revision) build += " (" + info.revision.slice(0, 12) + (info.modified ? ", modified" : "") + ")";
  rows.push(fact("version", build));
  rows.push(fact("go", info.go_version || "?"));
  rows.push(fact("up for", fmtDuration(info.uptime_seconds || 0)));
  rows.push(fact("TLS", f.tls || "off"));
  if (f.tls_not_after) {
    const left = (Date.parse(f.tls_not_after) - Date.now()) / 1000;
    const when = f.tls_not_after.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
    const cls = left <= 0 ? "err" : left < 14 * 86400 ? "warn" : "";
    rows.push(fact("certificate expires", when + (left > 0 ? " (in " + fmtDuration(left) + ")" : " (expired)"), cls));
  }
  if (f.test_source) rows.push(fact("test source", f.test_source.stream));
  rows.push(fact("encoder", f.encoder ? f.encoder.stream + " (" + (f.encoder.backend || "?") + ")" : "none"));
  rows.push(fact("egress", String(f.egress ?? 0)));
  byId("box").replaceChildren(...rows);
}

// Streams: a card per stream, kept across polls so the plot's samples
// and the page's scroll position survive.

// dotName is a name that a URL path cannot carry as a segment: browsers
// resolve /play/.. to /. The name rule allows them, so they are shown
// without links.
const dotName = (name) => name === "." || name === "..";

function streamCard(name) {
  const enc = encodeURIComponent(name);
  const link = (href, text, props) => (dotName(name) ? el("span", props, text) : el("a", Object.assign({ href }, props), text));
  const c = { name, samples: new Map(), paths: new Map() };
  c.live = el("span", { className: "badge" });
  c.pub = el("span", { className: "muted" });
  c.layers = el("tbody");
  c.viewers = el("tbody");
  c.viewerCount = el("span");
  c.legend = el("ul", { className: "legend" });
  c.series = svgEl("g");
  c.topLabel = svgEl("text", { x: 4, y: plotTop - 4, class: "axis" });
  c.midLabel = svgEl("text", { x: 4, y: plotTop + (plotH - plotTop - plotBottom) / 2 - 4, class: "axis" });
  const grid = svgEl("g", { class: "grid" });
  for (const frac of [0, 0.5, 1]) {
    const y = plotTop + frac * (plotH - plotTop - plotBottom);
    grid.append(svgEl("line", { x1: 0, x2: plotW, y1: y, y2: y }));
  }
  const ticks = svgEl("g", { class: "axis" });
  for (const min of [3, 2, 1, 0]) {
    const x = plotW * (1 - (min * 60000) / windowMS);
    grid.append(svgEl("line", { x1: x, x2: x, y1: plotTop, y2: plotH - plotBottom }));
    const t = svgEl("text", { x: Math.min(Math.max(x, 2), plotW - 2), y: plotH - 3, "text-anchor": min === 3 ? "start" : min === 0 ? "end" : "middle" });
    t.textContent = min ? "−" + min + " min" : "now";
    ticks.append(t);
  }
  c.svg = svgEl("svg", { viewBox: "0 0 " + plotW + " " + plotH, class: "plot", role: "img" }, grid, ticks, c.topLabel, c.midLabel, c.series);
  c.svg.setAttribute("aria-label", "bitrate of " + name + " over the last 3 minutes");
  c.root = el("article", { className: "stream card", dataset: { stream: name } },
    el("h3", null, link("/play/" + enc, name), " ", c.live, " ", c.pub,
      link("/publish/" + enc, "publish", { className: "small" })),
    el("div", { className: "stream-grid" },
      el("div", { className: "scroll" }, el("table", { className: "layers" },
        el("thead", null, el("tr", null, ...["layer", "codec", "resolution", "fps", "bitrate", "viewers"].map((h) => el("th", null, h)))),
        c.layers)),
      el("figure", { className: "plot-box" }, c.svg, el("figcaption", null, c.legend))),
    el("h4", null, "viewers ", c.viewerCount),
    el("div", { className: "scroll" }, el("table", { className: "viewers" },
      el("thead", null, el("tr", null, ...["session", "layer", "remote", "state", "for", "delivered", "dropped"].map((h) => el("th", null, h)))),
      c.viewers)));
  return c;
}

function renderStreams(streams, sessions, now) {
  const viewers = sessions.filter((s) => s.kind === "whep");
  streams = streams.slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const seen = new Set();
  const box = byId("streams");
  const order = [];
  for (const s of streams) {
    seen.add(s.name);
    let c = cards.get(s.name);
    if (!c) {
      c = streamCard(s.name);
      cards.set(s.name, c);
    }
    updateCard(c, s, viewers.filter((v) => v.stream === s.name), now);
    order.push(c.root);
  }
  for (const name of cards.keys()) if (!seen.has(name)) cards.delete(name);
  if (order.length === 0) order.push(el("p", { className: "muted" }, "no streams: publish one (see below) or configure a test source"));
  // Only move what moved, so open selections and focus are kept.
  if (order.length !== box.children.length || order.some((n, i) => box.children[i] !== n)) box.replaceChildren(...order);
  const first = streams.find((s) => s.live && !dotName(s.name)) || streams.find((s) => !dotName(s.name));
  if (first) navLinks(first.name);
}

function updateCard(c, s, viewers, now) {
  c.live.textContent = s.live ? "live" : "offline";
  c.live.className = "badge " + (s.live ? "ok" : "off");
  const p = s.publisher;
  c.pub.textContent = p ? (p.kind || "") + (p.remote ? " from " + p.remote : "") + (p.since ? ", for " + fmtSince(p.since) : "") : "no publisher";
  const layers = s.layers || [];
  c.layers.replaceChildren(...layers.map((l, i) => {
    const n = viewers.filter((v) => v.layer === l.name).length;
    const name = l.kind === "video" && !dotName(s.name)
      ? el("a", { href: "/play/" + encodeURIComponent(s.name) + "?layer=" + encodeURIComponent(l.name) }, l.name)
      : l.name;
    return el("tr", { dataset: { layer: l.name } },
      el("td", null, el("span", { className: "sw s" + (i % 6) }), " ", name),
      el("td", null, (l.codec || "").replace(/^(video|audio)\//, "")),
      el("td", null, l.width ? l.width + "×" + l.height : "–"),
      el("td", null, l.fps ? l.fps.toFixed(1) : "–"),
      el("td", { className: "num" }, fmtBps(l.bitrate_bps || 0)),
      el("td", { className: "num" }, l.kind === "video" ? n : "–"));
  }));
  if (layers.length === 0) c.layers.replaceChildren(el("tr", null, el("td", { colSpan: 6, className: "muted" }, "no layers yet")));

  // Samples: one per poll per layer, 0 while the layer is not live.
  layers.forEach((l, i) => {
    let pts = c.samples.get(l.name);
    if (!pts) {
      pts = [];
      c.samples.set(l.name, pts);
    }
    pts.push({ t: now, bps: l.live ? l.bitrate_bps || 0 : 0 });
    let path = c.paths.get(l.name);
    if (!path) {
      path = svgEl("path", { class: "series" });
      path.dataset.layer = l.name;
      c.paths.set(l.name, path);
      c.series.append(path);
    }
    path.setAttribute("class", "series s" + (i % 6));
  });
  for (const [name, pts] of c.samples) {
    while (pts.length && pts[0].t < now - windowMS) pts.shift();
    if (pts.length === 0) {
      c.samples.delete(name);
      c.paths.get(name).remove();
      c.paths.delete(name);
    }
  }
  renderPlot(c, now);
  c.legend.replaceChildren(...layers.map((l, i) => el("li", null, el("span", { className: "sw s" + (i % 6) }), l.name + " " + fmtBps(l.live ? l.bitrate_bps || 0 : 0))));

  c.viewerCount.textContent = "(" + viewers.length + ")";
  c.viewers.replaceChildren(...viewers.map((v) => {
    const d = v.detail || {};
    return el("tr", null,
      el("td", { className: "mono", title: v.id }, (v.id || "").slice(0, 8)),
      el("td", null, v.layer || "–"), el("td", null, v.remote || "–"), el("td", null, v.state || "–"),
      el("td", null, fmtSince(v.created)),
      el("td", { className: "num" }, d.delivered ?? "–"), el("td", { className: "num" }, d.dropped ?? "–"));
  }));
  if (viewers.length === 0) c.viewers.replaceChildren(el("tr", null, el("td", { colSpan: 7, className: "muted" }, "nobody watches")));
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function renderPlot(c, now) {
  let max = 0;
  for (const pts of c.samples.values()) for (const p of pts) max = Math.max(max, p.bps);
  const top = niceCeil(Math.max(max * 1.05, 10000));
  const span = plotH - plotTop - plotBottom;
  c.topLabel.textContent = fmtBps(top);
  c.midLabel.textContent = fmtBps(top / 2);
  const x = (t) => (plotW * (1 - (now - t) / windowMS)).toFixed(1);
  const y = (b) => (plotTop + span * (1 - b / top)).toFixed(1);
  for (const [name, pts] of c.samples) {
    c.paths.get(name).setAttribute("d", pts.map((p, i) => (i ? "L" : "M") + x(p.t) + " " + y(p.bps)).join(" "));
  }
}

// Egress: one row each, rebuilt every poll.

const egressStates = ["connecting", "connected", "reconnecting", "failed", "stopped"];

function targetHost(url) {
  try {
    return new URL(url).host || url;
  } catch (e) {
    return url || "–";
  }
}

function badge(state) {
  const known = egressStates.includes(state) || state === "running" || state === "backoff";
  return el("span", { className: "badge " + (known ? "st-" + state : "") }, state || "?");
}

function renderEgress(list) {
  const rows = list.map((e) => {
    const sessions = e.sessions || [];
    const up = sessions.filter((s) => s.state === "connected").length;
    const per = sessions.map((s) => (s.layers || []).join("+") + ": " + s.state + (s.last_error ? " (" + s.last_error + ")" : "")).join("\n");
    const row = el("tr", { dataset: { egress: e.id } },
      el("td", null, e.id),
      el("td", null, e.stream),
      el("td", { title: e.url || "" }, targetHost(e.url)),
      el("td", { className: "state" }, badge(e.state)),
      el("td", { title: e.since || "" }, e.since ? "for " + fmtSince(e.since) : "–"),
      el("td", { className: "num", title: per }, up + "/" + sessions.length),
      el("td", { className: "num" }, e.retries ?? 0),
      el("td", { className: "num" }, fmtBps(e.bitrate_bps || 0)),
      el("td", { className: "num" }, e.rtt_ms ? e.rtt_ms + " ms" : "–"),
      el("td", { className: "num" }, e.target_estimate_bps ? fmtBps(e.target_estimate_bps) : "–"));
    if (!e.last_error) return [row];
    // The last error on a row of its own, under the egress, full width.
    row.className = "has-error";
    return [row, el("tr", { className: "error-row", dataset: { egressError: e.id } },
      el("td", { colSpan: 10, className: "error-text" }, "last error: " + e.last_error))];
  }).flat();
  if (rows.length === 0) rows.push(el("tr", null, el("td", { colSpan: 10, className: "muted" }, "no egress (POST /api/v1/egress or the config's egress)")));
  byId("egress").replaceChildren(...rows);
}

// The encoder: built once, updated in place so the stderr details stay
// open (or closed) as the operator left them.

let enc = null;

function encoderView() {
  const v = {};
  v.facts = el("dl", { className: "facts" });
  v.layers = el("tbody");
  v.pre = el("pre", { className: "stderr" });
  v.summary = el("summary", null, "stderr");
  v.details = el("details", { className: "stderr-box" }, v.summary, v.pre);
  v.root = el("div", { className: "card" }, v.facts,
    el("div", { className: "scroll" }, el("table", { className: "enc-layers" },
      el("thead", null, el("tr", null, ...["layer", "codec", "fps", "frames", "last frame"].map((h) => el("th", null, h)))), v.layers)),
    v.details);
  return v;
}

function renderEncoder(feature, answer) {
  const box = byId("encoder");
  if (!feature) {
    enc = null;
    if (!box.querySelector(".muted")) box.replaceChildren(el("p", { className: "muted" }, "no encoder configured (hwaccel section)"));
    return;
  }
  if (!answer || !answer.ok) {
    enc = null;
    box.replaceChildren(el("p", { className: "err" }, "encoder status: " + (answer ? answer.status : "?")));
    return;
  }
  const st = answer.body;
  if (!enc) {
    enc = encoderView();
    box.replaceChildren(enc.root);
  }
  const rows = [];
  rows.push(fact("stream", feature.stream));
  rows.push(fact("backend", st.backend || "?"));
  rows.push(el("div", null, el("dt", null, "state"), el("dd", null, badge(st.state), " for " + fmtSince(st.since))));
  if (st.next_start) rows.push(fact("next start", "in " + fmtDuration((Date.parse(st.next_start) - Date.now()) / 1000)));
  rows.push(fact("pid", st.pid ? String(st.pid) : "–"));
  rows.push(fact("restarts", String(st.restarts ?? 0) + (st.fallbacks ? ", " + st.fallbacks + " fallbacks" : "")));
  if (st.last_error) rows.push(fact("last error", st.last_error + (st.last_error_at ? " (" + fmtSince(st.last_error_at) + " ago)" : ""), "error-text"));
  enc.facts.replaceChildren(...rows);
  enc.layers.replaceChildren(...(st.layers || []).map((l) => el("tr", { className: l.low_fps ? "warn" : "" },
    el("td", null, l.name), el("td", null, typeof l.codec === "string" ? l.codec : JSON.stringify(l.codec)),
    el("td", { className: "num" }, (l.fps || 0).toFixed(1) + (l.low_fps ? " (low)" : "")),
    el("td", { className: "num" }, l.frames ?? 0), el("td", null, l.last_frame ? fmtSince(l.last_frame) + " ago" : "–"))));
  const lines = st.stderr || [];
  enc.summary.textContent = lines.length ? "stderr (last " + lines.length + " lines)" : "stderr (nothing yet)";
  enc.pre.hidden = lines.length === 0;
  const text = lines.join("\n");
  if (enc.pre.textContent !== text) enc.pre.textContent = text;
}

byId("open").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = byId("open-name").value.trim();
  const msg = byId("msg");
  if (!/^[A-Za-z0-9._~-]{1,255}$/.test(name)) {
    msg.textContent = "a stream name is letters, digits and -_.~ (up to 255)";
    msg.hidden = false;
    return;
  }
  const page = ev.submitter && ev.submitter.value === "publish" ? "/publish/" : "/play/";
  location.href = page + encodeURIComponent(name);
});

tokenField(byId("token"), () => { poll(); });
loop();
