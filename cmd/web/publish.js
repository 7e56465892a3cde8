"use strict";

const stream = decodeURIComponent(location.pathname.split("/")[2] || "");
const q = new URLSearchParams(location.search);
const status = (t, err) => { const e = document.getElementById("status"); e.textContent = t; e.className = err ? "err" : ""; };
document.getElementById("title").textContent = "publish to " + stream;
if (q.get("codec")) document.getElementById("codec").value = q.get("codec");
async function start() {
  const source = document.getElementById("source").value;
  const media = source === "screen"
    ? await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true })
    : await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: true });
  document.getElementById("video").srcObject = media;
  const url = location.origin + "/whip/" + encodeURIComponent(stream);
  const { pc } = await whipPublish(url, media, document.getElementById("codec").value, status);
  status("connecting");
  pc.addEventListener("connectionstatechange", () => status(pc.connectionState, pc.connectionState === "failed"));
  watchStats(pc, "out", (s) => renderStats(document.getElementById("stats"), s));
}
document.getElementById("go").onclick = () => start().catch((e) => { status(String(e.message || e), true); window.whipgateError = String(e.message || e); });
if (q.get("autostart")) document.getElementById("go").click();
