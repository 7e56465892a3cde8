"use strict";

const stream = decodeURIComponent(location.pathname.split("/")[2] || "");
const layer = new URLSearchParams(location.search).get("layer") || "main";
const status = (t, err) => { const e = document.getElementById("status"); e.textContent = t; e.className = err ? "err" : ""; };
document.getElementById("title").textContent = stream + " / " + layer;
const url = location.origin + "/whep/" + encodeURIComponent(stream) + "/" + encodeURIComponent(layer);
whepPlay(url, document.getElementById("video"), status).then(({ pc }) => {
  status("connecting");
  pc.addEventListener("connectionstatechange", () => status(pc.connectionState, pc.connectionState === "failed"));
  watchStats(pc, "in", (s) => renderStats(document.getElementById("stats"), s));
}).catch((e) => { status(String(e.message || e), true); window.whipgateError = String(e.message || e); });
