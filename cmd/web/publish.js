// The publish page: this browser's camera or screen to /whip/{stream}.
// ?codec= picks the codec and ?autostart=1 publishes at once (the tests
// use both).
"use strict";

const stream = pageStream();
const q = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const [keyInput, sourceSelect, cameraSelect, micSelect, codecSelect, resSelect, bitrateInput, goButton, stopButton] =
  ["key", "source", "camera", "mic", "codec", "resolution", "bitrate", "go", "stop"].map($);
const video = $("video");
const statsTable = $("stats");

let session = null; // {media, token, pc, resource, stopStats}

function status(t, err) {
  const e = $("status");
  e.textContent = t;
  e.className = "status" + (err ? " err" : "");
}

function choose(select, value) {
  if (value && Array.from(select.options).some((o) => o.value === value)) select.value = value;
}

// listDevices fills the camera and microphone lists; before the first
// getUserMedia the browser may give no labels (or one unnamed device).
async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  fill(cameraSelect, devices.filter((d) => d.kind === "videoinput"), "camera", null);
  fill(micSelect, devices.filter((d) => d.kind === "audioinput"), "microphone", "no audio");
}

function fill(select, devices, what, none) {
  const keep = select.value;
  const opts = devices.map((d, i) => el("option", { value: d.deviceId }, d.label || what + " " + (i + 1)));
  if (opts.length === 0) opts.push(el("option", { value: "" }, "default " + what));
  if (none) opts.push(el("option", { value: "none" }, none));
  select.replaceChildren(...opts);
  choose(select, keep);
}

function capture() {
  const [w, h] = resSelect.value.split("x").map(Number);
  const audio = micSelect.value !== "none";
  if (sourceSelect.value === "screen") {
    return navigator.mediaDevices.getDisplayMedia({ video: { width: { ideal: w }, height: { ideal: h } }, audio });
  }
  const video = { width: { ideal: w }, height: { ideal: h } };
  if (cameraSelect.value) video.deviceId = { exact: cameraSelect.value };
  return navigator.mediaDevices.getUserMedia({
    video,
    audio: audio ? (micSelect.value ? { deviceId: { exact: micSelect.value } } : true) : false,
  });
}

// applyBitrate caps the video encoder at the bitrate field (or lifts the
// cap when it is empty).
function applyBitrate() {
  if (!session || !session.pc) return;
  const kbps = Number(bitrateInput.value);
  for (const sender of session.pc.getSenders()) {
    if (!sender.track || sender.track.kind !== "video") continue;
    const p = sender.getParameters();
    if (!p.encodings || p.encodings.length === 0) p.encodings = [{}];
    if (kbps > 0) p.encodings[0].maxBitrate = kbps * 1000;
    else delete p.encodings[0].maxBitrate;
    sender.setParameters(p).catch((e) => status("bitrate: " + (e.message || e), true));
  }
}

function stop() {
  const s = session;
  session = null;
  if (s) {
    if (s.stopStats) s.stopStats();
    if (s.pc) s.pc.close();
    hangUp(s.resource, s.token);
    if (s.media) s.media.getTracks().forEach((t) => t.stop());
  }
  video.srcObject = null;
  goButton.disabled = false;
  stopButton.disabled = true;
}

async function start() {
  stop();
  if (!navigator.mediaDevices) throw new Error("this page needs HTTPS (or localhost) for the camera and the screen");
  const s = { token: keyInput.value.trim() || sessionStorage.getItem(tokenKey) || "" };
  session = s;
  goButton.disabled = true;
  stopButton.disabled = false;
  status("opening the " + sourceSelect.value);
  s.media = await capture();
  if (session !== s) { s.media.getTracks().forEach((t) => t.stop()); return; }
  video.srcObject = s.media;
  listDevices().catch(() => {});
  const url = location.origin + "/whip/" + encodeURIComponent(stream);
  const { pc, resource } = await whipPublish(url, s.media, codecSelect.value, status, { token: s.token });
  if (session !== s) { pc.close(); hangUp(resource, s.token); return; }
  s.pc = pc;
  s.resource = resource;
  applyBitrate();
  status("connecting");
  pc.addEventListener("connectionstatechange", () => status(pc.connectionState, pc.connectionState === "failed"));
  s.stopStats = watchStats(pc, "out", (st) => renderStats(statsTable, st));
}

function startClicked() {
  start().catch((e) => {
    let msg = String((e && e.message) || e);
    if (e && e.status === 401) {
      msg = "401: the stream key was refused (" + msg + ")";
      keyInput.focus();
    }
    stop();
    status(msg, true);
    window.whipgateError = msg;
  });
}

$("title").textContent = "publish to " + stream;
document.title = "publish " + stream + " · whipgate";
navLinks(stream);
const watch = $("watch");
watch.href = "/play/" + encodeURIComponent(stream);
watch.textContent = location.origin + "/play/" + stream;
$("whip").textContent = location.origin + "/whip/" + stream;
keyInput.value = sessionStorage.getItem(streamTokenKey("publish", stream)) || "";
keyInput.addEventListener("change", () => setStreamToken("publish", stream, keyInput.value.trim()));
sourceSelect.addEventListener("change", () => { cameraSelect.disabled = sourceSelect.value === "screen"; });
bitrateInput.addEventListener("change", applyBitrate);
choose(codecSelect, q.get("codec"));
choose(resSelect, q.get("resolution"));
if (q.get("bitrate")) bitrateInput.value = q.get("bitrate");
goButton.addEventListener("click", startClicked);
stopButton.addEventListener("click", () => { stop(); status("stopped"); });
addEventListener("pagehide", stop);
if (!navigator.mediaDevices) status("this page needs HTTPS (or localhost) for the camera and the screen", true);
listDevices().catch(() => {});
if (q.get("autostart")) goButton.click();
