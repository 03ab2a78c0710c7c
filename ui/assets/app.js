// geodns status page: plain JS and SVG, no dependencies. It reads
// /ui/map.json (sites and where each region is sent, routed server-side),
// /api/v1/status (endpoints) and /ui/events.json (timeline), and writes
// through the API with the token the operator types, which lives only in
// this tab (memory and sessionStorage), never in a cookie or local storage.
"use strict";

// The API's status fields (api/types.go), in one place: a rename of the
// JSON is a change here.
const F = {
  services: "services", zone: "zone", name: "name", sites: "sites",
  siteName: "name", siteState: "state", siteReason: "reason",
  override: "override", overrideKind: "override", overrideCall: "call", overrideAt: "at", overrideReason: "reason",
  endpoints: "endpoints", epId: "id", epState: "state", epReason: "reason", epLastError: "last_error",
  check: "check", target: "target", since: "since",
  dialBody: "dial_percent", reasonBody: "reason",
};

const W = 1000, H = 500;                     // ui/internal/genworld's projection
const PALETTE = ["#2563eb", "#f97316", "#0d9488", "#c026d3", "#65a30d", "#0891b2", "#b45309", "#4f46e5"];
const ALL_DOWN = "#344054";
const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "geodns-token";

let token = sessionStorage.getItem(TOKEN_KEY) || "";
let current = "";        // "zone service" shown
let last = { map: null, status: null };

const $ = (id) => document.getElementById(id);
const x = (lon) => (lon + 180) / 360 * W;
const y = (lat) => (90 - lat) / 180 * H;

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "style") e.style.cssText = v; // through the CSSOM: the page's CSP refuses style attributes
    else e.setAttribute(k, v);
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}

// write calls the API with the token; the answer's error is shown.
async function write(method, path, body) {
  const msg = $("write-msg");
  if (!token) { msg.textContent = "a token is needed for changes"; return; }
  const opts = { method, headers: { Authorization: "Bearer " + token } };
  const reason = $("reason").value.trim();
  if (method === "POST") {
    body = Object.assign({}, body || {});
    if (reason) body[F.reasonBody] = reason; // who and why, in the server's log and status
  }
  if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  try {
    const r = await fetch(path, opts);
    const out = await r.json().catch(() => ({}));
    msg.textContent = r.ok ? `${method} ${path}: done` : `${method} ${path}: ${r.status} ${out.error || ""}`;
    msg.dataset.ok = r.ok ? "1" : "0";
  } catch (e) {
    msg.textContent = String(e);
    msg.dataset.ok = "0";
  }
  refresh();
}

function setMode() {
  const m = $("mode");
  m.textContent = token ? "writes enabled" : "read-only";
  m.className = "mode " + (token ? "rw" : "ro");
  for (const b of document.querySelectorAll("[data-write]")) b.disabled = !token;
}

async function drawWorld() {
  const world = await getJSON("world.json");
  const land = $("land"), borders = $("borders");
  let all = "";
  for (const c of world.countries) {
    land.appendChild(el("svg:path", { d: c.d }));
    borders.appendChild(el("svg:path", { d: c.d }));
    all += c.d;
  }
  $("land-clip").appendChild(el("svg:path", { d: all }));
}

function colours(svc) {
  const m = {};
  svc.sites.forEach((s, i) => { m[s.name] = PALETTE[i % PALETTE.length]; });
  m["all-down"] = ALL_DOWN;
  return m;
}

// siteState is how a site stands for the markers and tables.
function siteState(s, override) {
  if (override === "drain") return "drained";
  if (override === "down") return "forced-down";
  if (!s.up) return "down";
  if (s.keeps < 1) return "partial";
  if (override === "up") return "forced-up";
  return "up";
}
const STATE_FILL = { up: "#1a9b49", "forced-up": "#1a9b49", down: "#d92d20", "forced-down": "#d92d20", drained: "#7a5af8", partial: "#e3a008" };

function statusSvc(svc) {
  const st = last.status;
  if (!st) return null;
  return (st[F.services] || []).find((s) => s[F.zone] === svc.zone && s[F.name] === svc.name) || null;
}

function statusSite(ssvc, site) {
  if (!ssvc) return null;
  return (ssvc[F.sites] || []).find((x) => x[F.siteName] === site) || null;
}

// siteOverride is the site's override ("drain", "up", "down") or "".
function siteOverride(ssvc, site) {
  const s = statusSite(ssvc, site);
  const o = s && s[F.override];
  return (o && o[F.overrideKind]) || "";
}

function renderTabs(map) {
  const nav = $("services");
  const keys = map.services.map((s) => s.zone + " " + s.name);
  if (!keys.includes(current)) current = keys[0] || "";
  if (nav.dataset.keys !== keys.join("|")) {
    nav.textContent = "";
    for (const s of map.services) {
      const k = s.zone + " " + s.name;
      const b = el("button", { type: "button", "data-service": k }, s.name + " (" + s.zone.replace(/\.$/, "") + ")");
      b.onclick = () => { current = k; render(); refresh(); }; // the server routes the map of the service shown
      nav.appendChild(b);
    }
    nav.dataset.keys = keys.join("|");
  }
  for (const b of nav.children) b.classList.toggle("active", b.dataset.service === current);
}

function renderMap(svc, col, ssvc, map) {
  const shade = $("shade");
  shade.textContent = "";
  const side = map.cell_deg / 360 * W;
  for (const c of svc.cells) {
    if (!c.site) continue;
    shade.appendChild(el("svg:rect", {
      x: c.c * side, y: c.r * side, width: side + 0.2, height: side + 0.2,
      fill: col[c.site], "fill-opacity": (0.35 + 0.65 * c.share).toFixed(2),
      "data-site": c.site, "data-r": c.r, "data-c": c.c, "data-share": c.share,
    }));
  }
  const markers = $("markers");
  markers.textContent = "";
  for (const s of svc.sites) {
    const state = siteState(s, siteOverride(ssvc, s.name));
    const g = el("svg:g", { class: "marker", "data-site": s.name, "data-state": state });
    g.appendChild(el("svg:circle", { cx: x(s.lon), cy: y(s.lat), r: 7, fill: STATE_FILL[state], stroke: col[s.name] }));
    g.appendChild(el("svg:text", { x: x(s.lon) + 10, y: y(s.lat) + 4 }, `${s.name} ${state}`));
    g.appendChild(el("svg:title", {}, `${s.name}: ${state}, keeps ${Math.round(s.keeps * 100)} %`));
    markers.appendChild(g);
  }
  const legend = $("legend");
  legend.textContent = "";
  const names = svc.sites.map((s) => s.name);
  if (svc.shares["all-down"]) names.push("all-down");
  for (const n of names) {
    const item = el("span", { "data-site": n });
    item.appendChild(el("span", { class: "swatch", style: "background:" + col[n] }));
    item.appendChild(document.createTextNode(`${n}: ${Math.round((svc.shares[n] || 0) * 1000) / 10} % of sampled clients`));
    legend.appendChild(item);
  }
  $("map-note").textContent = map.sampled_networks
    ? `${map.sampled_networks} sampled client networks, routed at plan generation ${map.generation} (${new Date(map.computed).toLocaleTimeString()})`
    : "no GeoIP data: the map shows sites only";
}

function renderSites(svc, col, ssvc) {
  const body = $("sites").tBodies[0];
  const rows = {};
  for (const tr of body.rows) rows[tr.dataset.site] = tr;
  const want = new Set(svc.sites.map((s) => s.name));
  for (const k of Object.keys(rows)) if (!want.has(k) || body.dataset.svc !== current) { rows[k].remove(); delete rows[k]; }
  body.dataset.svc = current;
  const [, svcName] = current.split(" ");
  for (const s of svc.sites) {
    let tr = rows[s.name];
    if (!tr) {
      tr = el("tr", { "data-site": s.name });
      for (let i = 0; i < 7; i++) tr.appendChild(el("td"));
      const act = el("td");
      const drain = el("button", { type: "button", "data-write": "", "data-action": "drain" }, "Drain");
      drain.onclick = () => write("POST", `/api/v1/sites/${encodeURIComponent(s.name)}/drain`);
      const undrain = el("button", { type: "button", "data-write": "", "data-action": "undrain" }, "Undrain");
      undrain.onclick = () => write("POST", `/api/v1/sites/${encodeURIComponent(s.name)}/undrain`);
      const dial = el("input", { type: "number", min: 0, max: 100, step: 1, placeholder: "%", "aria-label": "dial percent", "data-dial": "" });
      const setDial = el("button", { type: "button", "data-write": "", "data-action": "dial" }, "Dial");
      setDial.onclick = () => {
        const v = Number(dial.value);
        if (dial.value === "" || !(v >= 0 && v <= 100)) { $("write-msg").textContent = "dial: a percentage from 0 to 100"; return; }
        write("POST", `/api/v1/services/${encodeURIComponent(svcName)}/sites/${encodeURIComponent(s.name)}/dial`, { [F.dialBody]: v });
      };
      const clearDial = el("button", { type: "button", "data-write": "", "data-action": "clear-dial" }, "Clear dial");
      clearDial.onclick = () => write("DELETE", `/api/v1/services/${encodeURIComponent(svcName)}/sites/${encodeURIComponent(s.name)}/dial`);
      act.append(drain, " ", undrain, " ", dial, " ", setDial, " ", clearDial);
      tr.appendChild(act);
      body.appendChild(tr);
    }
    const state = siteState(s, siteOverride(ssvc, s.name));
    const c = tr.cells;
    c[0].textContent = "";
    c[0].appendChild(el("span", { class: "swatch", style: "background:" + col[s.name] }));
    c[0].appendChild(document.createTextNode(s.name));
    c[1].textContent = state;
    c[1].className = "state " + state;
    tr.dataset.state = state;
    c[2].textContent = Math.round(s.keeps * 100) + " %";
    c[3].textContent = Math.round(s.dial * 100) + " %";
    c[4].textContent = Math.round(s.ramp * 100) + " %";
    c[5].textContent = Math.round((svc.shares[s.name] || 0) * 1000) / 10 + " %";
    const ss = statusSite(ssvc, s.name);
    c[6].textContent = (ss && ss[F.siteReason]) || "";
  }
}

function ago(t) {
  if (!t) return "";
  const s = Math.max(0, Math.round((Date.now() - new Date(t).getTime()) / 1000));
  const d = new Date(t).toLocaleTimeString();
  if (s < 90) return `${d} (${s} s ago)`;
  if (s < 5400) return `${d} (${Math.round(s / 60)} min ago)`;
  return `${new Date(t).toLocaleString()}`;
}

function renderEndpoints(ssvc) {
  const body = $("endpoints").tBodies[0];
  body.textContent = "";
  if (!ssvc) return;
  const cls = (st) => (st === "up" || st === "forced-up" ? "up" : st === "drained" ? "drained" : "down");
  for (const site of ssvc[F.sites] || []) {
    for (const ep of site[F.endpoints] || []) {
      const state = ep[F.epState] || "";
      let reason = ep[F.epReason] || "";
      if (ep[F.epLastError] && !reason.includes(ep[F.epLastError])) reason += (reason ? "; last error: " : "last error: ") + ep[F.epLastError];
      const tr = el("tr", { "data-endpoint": ep[F.epId], "data-state": state });
      tr.append(el("td", {}, site[F.siteName]), el("td", {}, ep[F.epId]),
        el("td", { class: "state " + cls(state) }, state),
        el("td", {}, ep[F.check] || "—"), el("td", {}, ep[F.target] || ""), el("td", {}, reason),
        el("td", {}, ago(ep[F.since])));
      body.appendChild(tr);
    }
  }
}

function renderTimeline(ev) {
  const ol = $("timeline");
  ol.textContent = "";
  for (const e of ev.events) {
    const li = el("li", { "data-kind": e.kind });
    li.append(el("time", { datetime: e.at }, new Date(e.at).toLocaleTimeString()), el("span", { class: "k" }, e.kind));
    const t = el("span", {}, e.text);
    if (e.up !== undefined) t.className = e.up ? "up" : "down";
    li.appendChild(t);
    ol.appendChild(li);
  }
}

function render() {
  const map = last.map;
  if (!map) return;
  renderTabs(map);
  const svc = map.services.find((s) => s.zone + " " + s.name === current);
  if (!svc) return;
  const col = colours(svc);
  const ssvc = statusSvc(svc);
  renderMap(svc, col, ssvc, map);
  renderSites(svc, col, ssvc);
  renderEndpoints(ssvc);
  setMode();
  document.body.dataset.generation = map.generation;
}

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const [zone, service] = current ? current.split(" ") : ["", ""];
    const q = current ? `?zone=${encodeURIComponent(zone)}&service=${encodeURIComponent(service)}` : "";
    const [map, status, ev] = await Promise.all([getJSON("map.json" + q), getJSON("/api/v1/status"), getJSON("events.json")]);
    last = { map, status };
    render();
    renderTimeline(ev);
    document.body.dataset.loaded = String(Date.now());
  } catch (e) {
    $("map-note").textContent = "cannot reach the server: " + e.message;
  } finally {
    busy = false;
  }
}

$("auth").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  $("token").value = "";
  if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
  setMode();
});
$("forget-token").onclick = () => { token = ""; sessionStorage.removeItem(TOKEN_KEY); setMode(); };

drawWorld().catch((e) => { $("map-note").textContent = "map: " + e.message; });
refresh();
setInterval(refresh, 2000);
