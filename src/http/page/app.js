// The rowplay page: search, thumbnails, tap to play, transport buttons,
// brightness, a live strip drawing and the status counters.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 50;
const TOKEN_KEY = "rowplay-token";
let token = localStorage.getItem(TOKEN_KEY) || "";
let query = "", offset = 0, total = 0, searchSeq = 0, status = {};

function withToken(url) {
  if (!token) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

function say(text) { $("message").textContent = text || ""; }

// fetch with the token; on 401 ask for it once, keep it, and try again.
async function api(url, opts = {}, asked = false) {
  const headers = Object.assign({}, opts.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  const r = await fetch(url, Object.assign({}, opts, { headers }));
  if (r.status === 401 && !asked) {
    const t = prompt("This player needs its access token:", "");
    if (t !== null && t.trim()) {
      token = t.trim();
      localStorage.setItem(TOKEN_KEY, token);
      startLive();
      return api(url, opts, true);
    }
  }
  return r;
}

async function command(line) {
  try {
    const r = await api("/api/command", { method: "POST", body: line, headers: { "Content-Type": "text/plain" } });
    const j = await r.json();
    say(r.ok ? "" : j.error);
    refreshStatus();
  } catch (e) { say("no answer from the player"); }
}

function card(a) {
  const li = document.createElement("li");
  li.dataset.index = a.index;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = "";
  img.src = withToken("/api/arrays/" + a.index + "/thumb.png");
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = a.name;
  name.title = a.name;
  const dims = document.createElement("div");
  dims.className = "dims";
  dims.textContent = a.rows + " rows \u00d7 " + a.leds + " LEDs" + (a.channels === 4 ? " RGBW" : "");
  li.append(img, name, dims);
  li.addEventListener("click", () => command("play #" + a.index));
  if (status.index === a.index) li.classList.add("playing");
  return li;
}

async function load(append) {
  const seq = ++searchSeq;
  if (!append) offset = 0;
  const url = "/api/arrays?q=" + encodeURIComponent(query) + "&offset=" + offset + "&limit=" + PAGE;
  try {
    const r = await api(url);
    if (seq !== searchSeq) return; // a newer keystroke won
    if (!r.ok) { say((await r.json()).error); return; }
    const j = await r.json();
    total = j.total;
    const list = $("arrays");
    if (!append) list.replaceChildren();
    for (const a of j.arrays) list.append(card(a));
    offset = j.offset + j.arrays.length;
    $("count").textContent = total === 1 ? "1 array" : total + " arrays";
    $("more").hidden = offset >= total;
  } catch (e) { say("no answer from the player"); }
}

let debounce = 0;
$("search").addEventListener("input", (e) => {
  clearTimeout(debounce);
  debounce = setTimeout(() => { query = e.target.value.trim(); load(false); }, 150);
});
$("more").addEventListener("click", () => load(true));
$("prev").addEventListener("click", () => command("prev"));
$("next").addEventListener("click", () => command("next"));
$("stop").addEventListener("click", () => command("stop"));
$("pause").addEventListener("click", () => command(status.state === "paused" || status.state === "stopped" ? "resume" : "pause"));

// A status answer may move the slider only when it was asked for after the
// last edit was sent and answered: an answer already on its way when the
// slider moved carries the old brightness and would throw the slider back
// (and, read by the debounced send, the old value would be sent).
let brightTimer = 0, dragging = false, brightEdit = 0, brightDone = 0;
const slider = $("brightness");
slider.addEventListener("input", () => {
  dragging = true;
  const edit = ++brightEdit, value = slider.value;
  $("brightness-value").textContent = value + "%";
  clearTimeout(brightTimer);
  brightTimer = setTimeout(async () => {
    await command("brightness " + (value / 100).toFixed(2));
    brightDone = Math.max(brightDone, edit);
  }, 80);
});
slider.addEventListener("change", () => { dragging = false; });

const COUNTERS = [
  ["frames", "frames"], ["deadline_misses", "misses"], ["underruns", "underruns"],
  ["skipped_ticks", "skipped"], ["output_errors", "output errors"], ["switches", "switches"],
];

function showStatus(s, edit) {
  status = s;
  const where = s.array ? s.array + " \u00b7 row " + s.row : "all off";
  $("now").textContent = s.state + " \u00b7 " + where;
  const settled = edit === brightEdit && brightDone === brightEdit;
  if (!dragging && settled && typeof s.brightness === "number") {
    slider.value = Math.round(s.brightness * 100);
    $("brightness-value").textContent = slider.value + "%";
  }
  const dl = $("counters");
  dl.replaceChildren();
  const add = (label, value, bad) => {
    const d = document.createElement("div");
    if (bad) d.className = "bad";
    const dt = document.createElement("dt"); dt.textContent = label;
    const dd = document.createElement("dd"); dd.textContent = value;
    d.append(dt, dd); dl.append(d);
  };
  for (const [k, label] of COUNTERS) if (k in s) add(label, s[k], k !== "frames" && k !== "switches" && s[k] > 0);
  const w = s.wake_latency_ns;
  if (w && "p99" in w) add("wake p99", (w.p99 / 1000).toFixed(0) + " \u00b5s", false);
  if (s.live_source) add("live", s.live_source, false);
  for (const li of $("arrays").children) li.classList.toggle("playing", Number(li.dataset.index) === s.index);
}

async function refreshStatus() {
  const edit = brightEdit;
  try {
    const r = await api("/api/status");
    if (r.ok) showStatus(await r.json(), edit);
  } catch (e) { /* the next tick tries again */ }
}

// The live strip: one pixel per LED shown, stretched to the width.
const canvas = $("strip"), ctx2d = canvas.getContext("2d");
let live = null;
function draw(ev) {
  const m = JSON.parse(ev.data);
  const hex = m.rgb, n = hex.length / 6;
  if (n === 0) return;
  if (canvas.width !== n) canvas.width = n;
  const img = ctx2d.createImageData(n, 1);
  for (let i = 0; i < n; i++) {
    img.data[i * 4] = parseInt(hex.substr(i * 6, 2), 16);
    img.data[i * 4 + 1] = parseInt(hex.substr(i * 6 + 2, 2), 16);
    img.data[i * 4 + 2] = parseInt(hex.substr(i * 6 + 4, 2), 16);
    img.data[i * 4 + 3] = 255;
  }
  ctx2d.putImageData(img, 0, 0);
}
function startLive() {
  if (live) live.close();
  live = new EventSource(withToken("/api/live"));
  live.onmessage = draw;
}

startLive();
load(false);
refreshStatus();
setInterval(refreshStatus, 1000);
