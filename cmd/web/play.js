// The player: one WHEP session at a time, reconnected by itself (backoff
// up to 2 s) when the session fails, the picture stops or the server
// restarts; a layer switch without a reload; a token field when the
// stream needs one. While it is not playing, the video is dimmed or blank
// under an overlay that says why, so a frozen picture never looks live.
//
// For people and tests: window.whipgateStats (the last getStats sample,
// with layer and connects), window.whipgatePlayer (state, layer, connects,
// attempts) and window.whipgateError (an error that stops playback, until
// a session connects again).
"use strict";

const stream = pageStream();
const video = document.getElementById("video");
const overlay = document.getElementById("overlay");
const overlayText = document.getElementById("overlay-text");
const tokenForm = document.getElementById("token-form");
const tokenInput = document.getElementById("view-token");
const layerSelect = document.getElementById("layer");
const statsTable = document.getElementById("stats");
const maxBackoff = 2000;

let layer = new URLSearchParams(location.search).get("layer") || "main";
const player = { state: "connecting", layer, connects: 0, attempts: 0 };
window.whipgatePlayer = player;

let gen = 0; // the current attempt; callbacks of older ones do nothing
let cur = null; // the current session: {abort, token, pc, resource, stopStats}
let retryTimer = 0;
let lostTimer = 0;
let backoff = 0;

function setState(state, text, err) {
  player.state = state;
  const playing = state === "playing";
  overlay.hidden = playing;
  overlay.classList.toggle("err", !!err);
  video.classList.toggle("stale", !playing);
  overlayText.textContent = text;
  const st = document.getElementById("status");
  st.textContent = text;
  st.className = "status" + (err ? " err" : "");
}

function showTitle() {
  document.getElementById("title").textContent = stream + " / " + layer;
  document.title = stream + " / " + layer + " · whipgate";
}

function whepURL() {
  return location.origin + "/whep/" + encodeURIComponent(stream) + "/" + encodeURIComponent(layer);
}

// teardown ends the current session, if any: hang up, stop sampling and
// blank the video.
function teardown() {
  gen++;
  clearTimeout(retryTimer);
  clearTimeout(lostTimer);
  const c = cur;
  cur = null;
  if (!c) return;
  c.abort.abort();
  if (c.stopStats) c.stopStats();
  if (c.pc) c.pc.close();
  hangUp(c.resource, c.token);
  video.srcObject = null;
}

// retry tears down and connects again after the backoff.
function retry(state, text, err) {
  teardown();
  backoff = Math.min(maxBackoff, backoff ? backoff * 2 : 250);
  setState(state, text, err);
  window.whipgateStats = { direction: "in", state, layer, connects: player.connects, framesDecoded: 0 };
  retryTimer = setTimeout(() => connect(), backoff * (0.8 + Math.random() * 0.4));
}

function lost(reason) {
  retry("reconnecting", "reconnecting… (" + reason + ")");
}

async function connect(text) {
  teardown();
  const my = gen;
  const c = { abort: new AbortController(), token: streamToken("view", stream) };
  cur = c;
  player.attempts++;
  tokenForm.hidden = true;
  setState(player.connects ? "reconnecting" : "connecting", text || (player.connects ? "reconnecting…" : "connecting…"));
  try {
    const onStatus = (t) => { if (my === gen) setState("waiting", t); };
    const { pc, resource } = await whepPlay(whepURL(), video, onStatus, { token: c.token, signal: c.abort.signal });
    if (my !== gen) {
      pc.close();
      hangUp(resource, c.token);
      return;
    }
    c.pc = pc;
    c.resource = resource;
    player.connects++;
    delete window.whipgateError;
    watch(c, my);
    loadLayers();
  } catch (e) {
    if (my !== gen) return; // switched, stopped or superseded
    failed(e);
  }
}

function failed(e) {
  const msg = String((e && e.message) || e);
  if (e.status === 401) {
    teardown();
    const had = !!sessionStorage.getItem(streamTokenKey("view", stream));
    setState("token", had ? "the token was refused: enter the stream's token" : "this stream needs a token", true);
    tokenForm.hidden = false;
    tokenInput.focus();
    return;
  }
  if (e.status >= 400 && e.status < 500 && ![408, 409, 429].includes(e.status)) {
    // The server answered no (an unknown stream or layer, say): say so
    // and ask again, as a stream may come back.
    window.whipgateError = msg;
    retry("error", msg, true);
    return;
  }
  lost(e.status || !(e instanceof TypeError) ? msg : "server unreachable");
}

// watch follows a session: its connection state, and its frames through
// getStats, to tell playing from stalled.
function watch(c, my) {
  const pc = c.pc;
  let frames = 0;
  let progressAt = Date.now();
  let decoding = false;
  setState("waiting", "connecting…");
  pc.addEventListener("connectionstatechange", () => {
    if (my !== gen) return;
    const st = pc.connectionState;
    if (st === "failed" || st === "closed") {
      lost("connection " + st);
    } else if (st === "disconnected") {
      clearTimeout(lostTimer);
      lostTimer = setTimeout(() => { if (my === gen && pc.connectionState !== "connected") lost("connection lost"); }, 2000);
    }
  });
  c.stopStats = watchStats(pc, "in", (s) => {
    if (my !== gen) return;
    const now = Date.now();
    if ((s.framesDecoded || 0) > frames) {
      frames = s.framesDecoded;
      progressAt = now;
      decoding = true;
      backoff = 0;
      if (player.state !== "playing") setState("playing", "playing " + layer);
    } else if (decoding && now - progressAt > 8000) {
      lost("no video for 8 s");
      return;
    } else if (decoding && now - progressAt > 2500) {
      if (player.state !== "stalled") setState("stalled", "no video for a moment…");
    } else if (!decoding && s.state === "connected" && player.state === "waiting") {
      overlayText.textContent = "connected; waiting for video…";
    }
    s.player = player.state;
    renderStats(statsTable, s);
  }, () => ({ layer, connects: player.connects }));
}

// loadLayers lists the stream's video layers when the API lets us, else
// offers main and preview.
async function loadLayers() {
  let names = [];
  try {
    const res = await fetch("/api/v1/streams/" + encodeURIComponent(stream), { headers: authHeaders(), cache: "no-store" });
    if (res.ok) {
      const s = await res.json();
      names = (s.layers || []).filter((l) => l.kind === "video").map((l) => l.name);
    }
  } catch (e) {}
  if (names.length === 0) names = ["main", "preview"];
  if (!names.includes(layer)) names.push(layer);
  const have = Array.from(layerSelect.options, (o) => o.value);
  if (have.join("\n") !== names.join("\n")) layerSelect.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  layerSelect.value = layer;
}

layerSelect.addEventListener("change", () => {
  if (layerSelect.value === layer) return;
  layer = layerSelect.value;
  player.layer = layer;
  const q = new URLSearchParams(location.search);
  q.set("layer", layer);
  history.replaceState(null, "", location.pathname + "?" + q.toString() + location.hash);
  showTitle();
  backoff = 0;
  connect("switching to " + layer + "…");
});

tokenForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  setStreamToken("view", stream, tokenInput.value.trim());
  tokenInput.value = "";
  backoff = 0;
  connect();
});

addEventListener("pagehide", teardown);
navLinks(stream);
showTitle();
loadLayers();
connect();
