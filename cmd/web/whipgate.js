// whipgate's browser side, shared by every page: tokens, DOM helpers, a
// WHEP player and a WHIP publisher. Plain scripts, no build step.
//
// Nothing here turns data into markup: stream names, rids and errors are
// anyone's strings, so the pages build elements and set textContent.
"use strict";

// The API token: a ?token= in the address is taken once into
// sessionStorage and removed from the address bar (so it is not
// bookmarked, shared or kept in history); after that, what the token
// field stored.
const tokenKey = "whipgate-token";
(function takeTokenFromURL() {
  const q = new URLSearchParams(location.search);
  const t = q.get("token");
  if (!t) return;
  sessionStorage.setItem(tokenKey, t);
  q.delete("token");
  const rest = q.toString();
  history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
})();

function setToken(t) {
  if (t) sessionStorage.setItem(tokenKey, t);
  else sessionStorage.removeItem(tokenKey);
}

function bearer(t) {
  return t ? { Authorization: "Bearer " + t } : {};
}

function authHeaders() {
  return bearer(sessionStorage.getItem(tokenKey));
}

// tokenField wires an <input> to the stored API token; changed calls back.
function tokenField(input, changed) {
  input.value = sessionStorage.getItem(tokenKey) || "";
  input.addEventListener("change", () => { setToken(input.value.trim()); if (changed) changed(); });
}

// A stream's own token (a view_token for the player, a publish_token for
// the publish page) is kept per stream; without one, the API token (or a
// ?token=) is sent, as before.
function streamTokenKey(kind, stream) {
  return "whipgate-" + kind + "-token:" + stream;
}

function streamToken(kind, stream) {
  return sessionStorage.getItem(streamTokenKey(kind, stream)) || sessionStorage.getItem(tokenKey) || "";
}

function setStreamToken(kind, stream, t) {
  if (t) sessionStorage.setItem(streamTokenKey(kind, stream), t);
  else sessionStorage.removeItem(streamTokenKey(kind, stream));
}

// pageStream is the {stream} of /play/{stream} and /publish/{stream}.
function pageStream() {
  try {
    return decodeURIComponent(location.pathname.split("/")[2] || "");
  } catch (e) {
    return "";
  }
}

// el makes an element: props are set as properties (className, href,
// type…), never as markup; children are nodes or strings (text nodes).
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else e[k] = v;
  }
  e.append(...children.filter((c) => c !== null && c !== undefined).map((c) => (c instanceof Node ? c : String(c))));
  return e;
}

const svgNS = "http://www.w3.org/2000/svg";

// svgEl makes an SVG element with attributes.
function svgEl(tag, attrs, ...children) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  e.append(...children);
  return e;
}

// navLinks points the header's player and publish links at a stream.
function navLinks(stream) {
  const enc = encodeURIComponent(stream);
  for (const [id, path] of [["nav-play", "/play/"], ["nav-publish", "/publish/"]]) {
    const a = document.getElementById(id);
    if (a) a.href = path + enc;
  }
}

function fmtBps(bps) {
  if (bps === undefined || bps === null) return "–";
  if (bps >= 1e6) return (bps / 1e6).toFixed(bps >= 1e7 ? 0 : 1) + " Mbit/s";
  if (bps >= 1e3) return Math.round(bps / 1e3) + " kbit/s";
  return Math.round(bps) + " bit/s";
}

function fmtDuration(sec) {
  sec = Math.max(0, Math.floor(sec));
  const d = Math.floor(sec / 86400), h = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  if (d) return d + " d " + h + " h";
  if (h) return h + " h " + m + " min";
  if (m) return m + " min " + s + " s";
  return s + " s";
}

// fmtSince is how long ago an RFC 3339 time was ("" when unset).
function fmtSince(iso) {
  const t = Date.parse(iso);
  if (!iso || isNaN(t) || t <= 0) return "";
  return fmtDuration((Date.now() - t) / 1000);
}

function waitGathering(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(done, ms);
  });
}

// sleep waits ms, or rejects when signal aborts.
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) { reject(signal.reason); return; }
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener("abort", () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

// signal sends an offer with all candidates and returns the answer and the
// session URL; 409 (no publisher yet) is retried after Retry-After. An
// error answer throws an Error with its HTTP status in .status. opts:
// token (Bearer; default the API token), signal (an AbortSignal).
async function signal(url, pc, onStatus, opts) {
  opts = opts || {};
  const auth = opts.token !== undefined ? bearer(opts.token) : authHeaders();
  for (;;) {
    const res = await fetch(url, {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/sdp" }, auth),
      body: pc.localDescription.sdp,
      signal: opts.signal,
    });
    if (res.status === 409) {
      const wait = Number(res.headers.get("Retry-After") || 2);
      onStatus("no publisher yet; retrying in " + wait + " s");
      await sleep(wait * 1000, opts.signal);
      continue;
    }
    const text = await res.text();
    if (res.status !== 201) {
      let msg = text;
      try { msg = JSON.parse(text).detail || text; } catch (e) {}
      const err = new Error(res.status + " " + msg);
      err.status = res.status;
      throw err;
    }
    return { answer: text, resource: new URL(res.headers.get("Location"), url).toString() };
  }
}

// hangUp DELETEs a session; a server that is gone already is no error.
function hangUp(resource, token) {
  if (!resource) return;
  fetch(resource, { method: "DELETE", headers: bearer(token), keepalive: true }).catch(() => {});
}

// offerAnswer makes a PeerConnection, lets addTracks add its transceivers,
// and runs the offer/answer exchange with the endpoint at url. The caller
// owns the session it returns: close the pc and hangUp the resource. On an
// error the pc is closed. opts as for signal.
async function offerAnswer(url, addTracks, onStatus, opts) {
  const pc = new RTCPeerConnection();
  try {
    addTracks(pc);
    await pc.setLocalDescription(await pc.createOffer());
    await waitGathering(pc, 1000);
    const { answer, resource } = await signal(url, pc, onStatus, opts);
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    return { pc, resource };
  } catch (e) {
    pc.close();
    throw e;
  }
}

// whepPlay opens a WHEP session and shows it in video. The caller owns the
// session, as with offerAnswer. opts as for signal.
function whepPlay(url, video, onStatus, opts) {
  return offerAnswer(url, (pc) => {
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.ontrack = (ev) => { stream.addTrack(ev.track); video.srcObject = stream; };
  }, onStatus, opts);
}

// whipPublish publishes media's tracks with codec preferred. The caller
// owns the session, as with offerAnswer. opts as for signal.
function whipPublish(url, media, codec, onStatus, opts) {
  return offerAnswer(url, (pc) => {
    for (const track of media.getTracks()) {
      const tr = pc.addTransceiver(track, { direction: "sendonly" });
      if (track.kind === "video" && codec && RTCRtpSender.getCapabilities) {
        const caps = RTCRtpSender.getCapabilities("video").codecs;
        const pref = caps.filter((c) => c.mimeType.toLowerCase() === "video/" + codec.toLowerCase());
        if (pref.length) tr.setCodecPreferences(pref.concat(caps.filter((c) => !pref.includes(c))));
      }
    }
  }, onStatus, opts);
}

// watchStats samples getStats once a second; the last sample is kept in
// window.whipgateStats for people and tests alike, with extra()'s fields
// added. It returns a func that stops the sampling.
function watchStats(pc, direction, render, extra) {
  let last = null;
  let stopped = false;
  const timer = setInterval(async () => {
    let report;
    try {
      report = await pc.getStats();
    } catch (e) {
      return; // closed under us
    }
    if (stopped) return;
    const s = { direction };
    report.forEach((r) => {
      if (r.type === (direction === "in" ? "inbound-rtp" : "outbound-rtp") && r.kind === "video") {
        s.width = r.frameWidth; s.height = r.frameHeight; s.fps = r.framesPerSecond;
        s.framesDecoded = r.framesDecoded; s.framesEncoded = r.framesEncoded;
        s.packetsLost = r.packetsLost; s.packets = r.packetsReceived ?? r.packetsSent;
        s.bytes = r.bytesReceived ?? r.bytesSent; s.time = r.timestamp;
        s.nack = r.nackCount; s.pli = r.pliCount; s.codecId = r.codecId;
      }
      if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") {
        s.rttMs = r.currentRoundTripTime !== undefined ? Math.round(r.currentRoundTripTime * 1000) : undefined;
      }
    });
    if (s.codecId && report.get(s.codecId)) s.codec = report.get(s.codecId).mimeType;
    if (last && s.bytes !== undefined && s.time > last.time) {
      s.kbps = Math.round(((s.bytes - last.bytes) * 8) / (s.time - last.time));
    }
    s.state = pc.connectionState;
    if (extra) Object.assign(s, extra());
    last = s;
    window.whipgateStats = s;
    render(s);
  }, 1000);
  return () => { stopped = true; clearInterval(timer); };
}

function renderStats(table, s) {
  const rows = [
    ["state", s.state], ["codec", s.codec], ["resolution", s.width ? s.width + "×" + s.height : "–"],
    ["fps", s.fps ?? "–"], ["bitrate", s.kbps !== undefined ? s.kbps + " kbit/s" : "–"],
    [s.direction === "in" ? "frames decoded" : "frames encoded", s.direction === "in" ? s.framesDecoded : s.framesEncoded],
    ["packets lost", s.packetsLost ?? "–"], ["NACK / PLI", (s.nack ?? "–") + " / " + (s.pli ?? "–")],
    ["RTT", s.rttMs !== undefined ? s.rttMs + " ms" : "–"],
  ];
  table.replaceChildren(...rows.map(([k, v]) => el("tr", null, el("th", { scope: "row" }, k), el("td", null, v ?? "–"))));
}
