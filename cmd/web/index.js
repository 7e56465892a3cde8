// The streams page: built with elements and textContent, never markup
// from data (a stream name is anyone's string).
"use strict";

document.getElementById("whip").textContent = location.origin + "/whip/{name}";

function cell(row, ...children) {
  const td = document.createElement("td");
  td.append(...children);
  row.append(td);
  return td;
}

async function load() {
  const res = await fetch("/api/v1/streams", { headers: authHeaders() });
  const msg = document.getElementById("msg");
  if (!res.ok) {
    msg.textContent = res.status + ": enter the API token to list streams";
    msg.className = "err";
    return;
  }
  msg.textContent = "";
  const { streams } = await res.json();
  const body = document.getElementById("streams");
  const rows = streams.map((s) => {
    const tr = document.createElement("tr");
    cell(tr, s.name);
    cell(tr, s.live ? "yes" : "no");
    const layers = cell(tr);
    (s.layers || []).filter((l) => l.kind === "video").forEach((l, i) => {
      if (i > 0) layers.append(", ");
      const a = document.createElement("a");
      a.href = "/play/" + encodeURIComponent(s.name) + "?layer=" + encodeURIComponent(l.name);
      a.textContent = l.name;
      layers.append(a, " " + l.codec.replace("video/", "") + (l.bitrate_bps ? " " + Math.round(l.bitrate_bps / 1000) + " kbit/s" : ""));
    });
    cell(tr, String((s.subscribers || []).length));
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    cell(tr, "no streams").colSpan = 4;
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}
tokenField(document.getElementById("token"), load);
load(); setInterval(load, 3000);
