// whipgate's browser side: a WHEP player and a WHIP publisher, no build step.
"use strict";

// The token: a ?token= in the address is taken once into sessionStorage
// and removed from the address bar (so it is not bookmarked, shared or
// kept in history); after that, what the token field stored.
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

function authHeaders() {
  const t = sessionStorage.getItem(tokenKey);
  return t ? { Authorization: "Bearer " + t } : {};
}

// tokenField wires an <input> to the stored token; changed calls back.
function tokenField(input, changed) {
  input.value = sessionStorage.getItem(tokenKey) || "";
  input.addEventListener("change", () => { setToken(input.value.trim()); if (changed) changed(); });
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

// post sends an offer with all candidates and returns the answer and the
// session URL; 409 (no publisher yet) is retried after Retry-After.
async function signal(url, pc, onStatus) {
  for (;;) {
    const res = await fetch(url, {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/sdp" }, authHeaders()),
      body: pc.localDescription.sdp,
    });
    if (res.status === 409) {
      const wait = Number(res.headers.get("Retry-After") || 2);
      onStatus("no publisher yet; retrying in " + wait + " s");
      await new Promise((r) => setTimeout(r, wait * 1000));
      continue;
    }
    const text = await res.text();
    if (res.status !== 201) {
      let msg = text;
      try { msg = JSON.parse(text).detail || text; } catch (e) {}
      throw new Error(res.status + " " + msg);
    }
    return { answer: text, resource: new URL(res.headers.get("Location"), url).toString() };
  }
}

async function whepPlay(url, video, onStatus) {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.ontrack = (ev) => { stream.addTrack(ev.track); video.srcObject = stream; };
  await pc.setLocalDescription(await pc.createOffer());
  await waitGathering(pc, 1000);
  const { answer, resource } = await signal(url, pc, onStatus);
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  addEventListener("pagehide", () => fetch(resource, { method: "DELETE", headers: authHeaders(), keepalive: true }));
  return { pc, resource };
}

async function whipPublish(url, media, codec, onStatus) {
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) {
    const tr = pc.addTransceiver(track, { direction: "sendonly" });
    if (track.kind === "video" && codec && RTCRtpSender.getCapabilities) {
      const caps = RTCRtpSender.getCapabilities("video").codecs;
      const pref = caps.filter((c) => c.mimeType.toLowerCase() === "video/" + codec.toLowerCase());
      if (pref.length) tr.setCodecPreferences(pref.concat(caps.filter((c) => !pref.includes(c))));
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  await waitGathering(pc, 1000);
  const { answer, resource } = await signal(url, pc, onStatus);
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  addEventListener("pagehide", () => fetch(resource, { method: "DELETE", headers: authHeaders(), keepalive: true }));
  return { pc, resource };
}

// watchStats samples getStats once a second; the last sample is kept in
// window.whipgateStats for people and tests alike.
function watchStats(pc, direction, render) {
  let last = null;
  setInterval(async () => {
    const report = await pc.getStats();
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
    last = s;
    window.whipgateStats = s;
    render(s);
  }, 1000);
}

function renderStats(table, s) {
  const rows = [
    ["state", s.state], ["codec", s.codec], ["resolution", s.width ? s.width + "×" + s.height : "–"],
    ["fps", s.fps ?? "–"], ["bitrate", s.kbps !== undefined ? s.kbps + " kbit/s" : "–"],
    [s.direction === "in" ? "frames decoded" : "frames encoded", s.direction === "in" ? s.framesDecoded : s.framesEncoded],
    ["packets lost", s.packetsLost ?? "–"], ["NACK / PLI", (s.nack ?? "–") + " / " + (s.pli ?? "–")],
    ["RTT", s.rttMs !== undefined ? s.rttMs + " ms" : "–"],
  ];
  table.replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement("tr");
    for (const text of [k, v ?? "–"]) {
      const td = document.createElement("td");
      td.textContent = String(text);
      tr.append(td);
    }
    return tr;
  }));
}
