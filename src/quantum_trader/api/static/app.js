"use strict";
// Quantum Trader dashboard: plain JS, no dependencies. Loads the state over the JSON API, then
// follows /events (Server-Sent Events). Cells are only written when their text changes, so
// nothing flickers; a lost stream is shown at once and the page resynchronises on reconnect.

const $ = (id) => document.getElementById(id);
const MAX_POINTS = 4000;
const STALE_STREAM_MS = 40000; // the server pings every 15 s
let curve = []; // [{t: ms, e: equity, dd: drawdown}]
let token = ""; // kept in memory for this page only, never stored
let source = null;
let lastMessage = 0;
let drawPending = false;
let dialogAction = null;

function num(x, digits = 2) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "—";
  return x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function pct(x) { return x === null || x === undefined || !Number.isFinite(x) ? "—" : (x * 100).toFixed(2) + " %"; }
function signed(x) { return x > 0 ? "pos" : x < 0 ? "neg" : ""; }
function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "—" : d.toISOString().replace("T", " ").slice(0, 19) + "Z";
}
function setText(el, text, cls) {
  if (typeof el === "string") el = $(el);
  if (el.textContent !== text) el.textContent = text;
  if (cls !== undefined && el.className !== cls) el.className = cls;
}

async function getJSON(path) {
  const reply = await fetch(path, { cache: "no-store" });
  if (!reply.ok) throw new Error(`${path}: HTTP ${reply.status}`);
  return reply.json();
}

// ---------------------------------------------------------------- rendering
function renderStatus(s) {
  setText("equity-value", num(s.total_equity), "value");
  setText("drawdown-value", pct(s.drawdown), "value" + (s.drawdown > 0.05 ? " neg" : ""));
  setText("maxdd-value", pct(s.max_drawdown), "value");
  setText("upnl-value", num(s.unrealized_pnl), "value " + signed(s.unrealized_pnl));
  setText("rpnl-value", num(s.realized_pnl), "value " + signed(s.realized_pnl));
  setText("fees-value", `${num(s.fees)} / ${num(s.funding)}`, "value");
  setText("npos-value", String(s.open_positions), "value");
  setText("flow-value", `${s.orders_seen} / ${s.fills_seen}`, "value");
  const mode = s.risk_mode || "—";
  setText("mode-pill", "mode " + mode.toUpperCase(),
    "pill " + ({ aggressive: "warn", normal: "good", safe: "warn", critical: "bad" }[mode] || ""));
  const state = s.effective_trading_state || "—";
  setText("state-pill", "trading " + state.toUpperCase(),
    "pill " + ({ active: "good", reducing: "warn", halted: "bad" }[state] || ""));
  if (s.ess) renderEss(s.ess);
  const problems = [];
  if (!s.stores_reachable) problems.push("state stores unreachable: showing the last known policy and ESS state");
  if (s.bus_connected === false) problems.push("event bus unreachable: worker figures are not updating");
  const stale = s.workers.filter((w) => w.stale).map((w) => w.worker);
  if (stale.length) problems.push(`no heartbeat from ${stale.join(", ")}`);
  const missing = s.expected_workers.filter((w) => !s.workers.some((x) => x.worker === w));
  if (missing.length) problems.push(`waiting for the first status of ${missing.join(", ")}`);
  setText("banner", problems.join(" · "), problems.length ? "banner" : "banner hidden");
  renderWorkers(s.workers);
}

function syncRows(tbody, rows, key, cells) {
  const seen = new Set();
  for (const row of rows) {
    const id = key(row);
    seen.add(id);
    let tr = tbody.querySelector(`tr[data-key="${CSS.escape(id)}"]`);
    const values = cells(row);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.key = id;
      for (const [, cls] of values) {
        const td = document.createElement("td");
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
    values.forEach(([text, cls], i) => setText(tr.children[i], text, cls || ""));
  }
  for (const tr of [...tbody.children]) if (!seen.has(tr.dataset.key)) tr.remove();
}

function renderWorkers(workers) {
  syncRows($("workers-body"), workers, (w) => w.worker, (w) => [
    [w.worker, ""],
    [num(w.equity), "num"],
    [time(w.market_time), ""],
    [`${w.heartbeat_age_secs.toFixed(1)} s`, "num" + (w.stale ? " neg" : "")],
    [w.halted ? "HALTED" : w.stale ? "STALE" : "trading", w.halted || w.stale ? "neg" : "pos"],
  ]);
}

function renderPositions(positions) {
  syncRows($("positions-body"), positions, (p) => `${p.symbol}|${p.worker}`, (p) => [
    [p.symbol, ""],
    [p.worker, ""],
    [p.side.toUpperCase(), p.side === "long" ? "pos" : "neg"],
    [num(p.quantity, 4), "num"],
    [num(p.entry_price), "num"],
    [num(p.mark_price), "num"],
    [num(p.notional), "num"],
    [num(p.unrealized_pnl), "num " + signed(p.unrealized_pnl)],
  ]);
  $("positions-empty").classList.toggle("hidden", positions.length > 0);
}

function renderEss(ess) {
  setText("ess-state", ess.active ? "ACTIVE" : "INACTIVE", "ess " + (ess.active ? "ess-active" : "ess-inactive"));
  setText("ess-pill", ess.active ? "ESS ACTIVE" : "ESS off", "pill " + (ess.active ? "bad" : "good"));
  const facts = ess.active
    ? [["reason", ess.reason], ["by", ess.activated_by], ["since", time(ess.activated_at)], ["activations", String(ess.activations)]]
    : [["activations", String(ess.activations)], ["last reset", ess.reset_at ? `${time(ess.reset_at)} by ${ess.reset_by}: ${ess.reset_reason}` : "—"]];
  const dl = $("ess-facts");
  const text = JSON.stringify(facts);
  if (dl.dataset.text !== text) {
    dl.dataset.text = text;
    dl.replaceChildren(...facts.flatMap(([k, v]) => {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v || "—";
      return [dt, dd];
    }));
  }
  $("ess-trigger").disabled = ess.active;
  $("ess-reset").disabled = !ess.active;
}

function renderHistory(items) {
  const ul = $("mode-history");
  ul.replaceChildren(...items.map((h) => {
    const li = document.createElement("li");
    const t = document.createElement("span"); t.className = "t"; t.textContent = time(h.updated_at);
    const tag = document.createElement("span");
    tag.className = "tag " + ({ critical: "bad", safe: "warn", aggressive: "warn" }[h.mode] || "good");
    tag.textContent = `v${h.version} ${h.mode.toUpperCase()} / ${h.effective_trading_state}`;
    const why = document.createElement("span"); why.textContent = `${h.updated_by}: ${h.reason}`;
    li.append(t, tag, why);
    return li;
  }));
}

function feedItem(stamp, tagText, tagClass, text) {
  const li = document.createElement("li");
  const t = document.createElement("span"); t.className = "t"; t.textContent = stamp;
  const tag = document.createElement("span"); tag.className = "tag " + tagClass; tag.textContent = tagText;
  const body = document.createElement("span"); body.textContent = text;
  li.append(t, tag, body);
  return li;
}

function addAudit(r, atTop = true) {
  const bad = r.event_type.startsWith("emergency.triggered") || r.event_type === "risk.blocked";
  const cls = bad ? "bad" : r.event_type.startsWith("emergency") || r.event_type === "policy.changed" ? "warn" : "";
  const text = [r.actor, r.action, r.target, r.reason].filter(Boolean).join(" · ");
  const li = feedItem(time(r.ts), r.event_type, cls, text);
  const ul = $("audit-feed");
  if (atTop) ul.prepend(li); else ul.append(li);
  while (ul.children.length > 200) ul.lastChild.remove();
}

function addOrder(o, atTop = true) {
  const cls = o.status === "rejected" ? "bad" : o.reduce_only ? "warn" : "good";
  const text = `${o.worker} ${o.side} ${num(o.quantity, 4)} ${o.symbol}${o.reduce_only ? " reduce-only" : ""}${o.reason ? " — " + o.reason : ""}`;
  const li = feedItem(time(o.market_time || o.published_at), o.status, cls, text);
  const ul = $("orders-feed");
  if (atTop) ul.prepend(li); else ul.append(li);
  while (ul.children.length > 100) ul.lastChild.remove();
}

// ---------------------------------------------------------------- charts
function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => { drawPending = false; drawCharts(); });
}

function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = Number(canvas.getAttribute("height"));
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  canvas.style.height = height + "px";
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return [ctx, width, height];
}

function drawSeries(canvas, values, opts) {
  const [ctx, width, height] = prepare(canvas);
  const left = 70, right = 10, top = 8, bottom = 18;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#8b98a5";
  if (values.length < 2) {
    ctx.fillText("waiting for data…", left, height / 2);
    return;
  }
  let lo = Math.min(...values), hi = Math.max(...values);
  if (opts.zeroTop) { hi = 0; }
  if (hi === lo) { hi += 1; lo -= 1; }
  const x = (i) => left + (i / (values.length - 1)) * (width - left - right);
  const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom);
  ctx.strokeStyle = "#2a3440"; ctx.lineWidth = 1;
  for (const v of [lo, (lo + hi) / 2, hi]) {
    ctx.beginPath(); ctx.moveTo(left, y(v)); ctx.lineTo(width - right, y(v)); ctx.stroke();
    ctx.fillText(opts.label(v), 4, y(v) + 4);
  }
  ctx.beginPath();
  values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
  ctx.strokeStyle = opts.color; ctx.lineWidth = 1.5; ctx.stroke();
  if (opts.fill) {
    ctx.lineTo(x(values.length - 1), y(hi)); ctx.lineTo(x(0), y(hi)); ctx.closePath();
    ctx.fillStyle = opts.fill; ctx.fill();
  }
}

function drawCharts() {
  drawSeries($("equity-chart"), curve.map((p) => p.e), { color: "#58a6ff", label: (v) => num(v, 0) });
  drawSeries($("drawdown-chart"), curve.map((p) => -p.dd), {
    color: "#f85149", fill: "rgba(248, 81, 73, .25)", zeroTop: true, label: (v) => pct(-v),
  });
  if (curve.length) {
    setText("equity-range", `${time(new Date(curve[0].t).toISOString())} → ${time(new Date(curve[curve.length - 1].t).toISOString())} (market time)`);
  }
}

function addPoint(p) {
  const point = { t: Date.parse(p.time), e: p.equity, dd: p.drawdown };
  const last = curve[curve.length - 1];
  if (last && point.t < last.t) return;
  if (last && point.t === last.t) curve[curve.length - 1] = point; else curve.push(point);
  if (curve.length > MAX_POINTS) curve = curve.filter((_, i) => i % 2 === 0 || i === curve.length - 1);
  scheduleDraw();
}

// ---------------------------------------------------------------- loading and the stream
// The feed shows the last day: the query then opens at most two day files of the trail.
function dayAgo() { return encodeURIComponent(new Date(Date.now() - 86400000).toISOString()); }

async function resync() {
  try {
    const [status, positions, equity, history, audit, orders] = await Promise.all([
      getJSON("/status"), getJSON("/positions"), getJSON("/equity?max_points=" + MAX_POINTS),
      getJSON("/risk-mode/history?limit=30"), getJSON("/audit?limit=100&since=" + dayAgo()),
      getJSON("/orders?limit=50"),
    ]);
    renderStatus(status);
    renderPositions(positions.positions);
    curve = equity.points.map((p) => ({ t: Date.parse(p.time), e: p.equity, dd: p.drawdown }));
    scheduleDraw();
    renderHistory(history.items);
    $("audit-feed").replaceChildren();
    audit.records.forEach((r) => addAudit(r, false));
    $("orders-feed").replaceChildren();
    orders.orders.forEach((o) => addOrder(o, false));
  } catch (err) {
    setText("banner", "could not load the state: " + err.message, "banner");
  }
}

function setConnection(kind, text) {
  setText("conn", text, "conn conn-" + kind);
  // While disconnected every figure is the last one heard: grey it out so nobody trusts it.
  document.body.classList.toggle("disconnected", kind === "lost");
}

function connect() {
  if (source) source.close();
  setConnection("connecting", "connecting…");
  source = new EventSource("/events");
  lastMessage = Date.now();
  source.onopen = () => { setConnection("live", "● live"); lastMessage = Date.now(); resync(); };
  source.onerror = () => {
    setConnection("lost", "connection lost — reconnecting…");
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
  };
  const on = (name, fn) => source.addEventListener(name, (ev) => {
    lastMessage = Date.now();
    fn(JSON.parse(ev.data));
  });
  on("snapshot", (d) => {
    renderStatus(d.status);
    renderPositions(d.positions);
    if (d.equity_point) addPoint(d.equity_point);
  });
  on("order", (o) => addOrder({ ...o, market_time: o.market_ts ? new Date(o.market_ts / 1e6).toISOString() : null }));
  on("audit", (r) => addAudit(r));
  on("policy", () => getJSON("/risk-mode/history?limit=30").then((h) => renderHistory(h.items)).catch(() => {}));
  on("ess", () => getJSON("/ess").then(renderEss).catch(() => {}));
  on("ping", () => {});
}

setInterval(() => {
  setText("clock", new Date().toISOString().slice(11, 19) + "Z");
  if (source && Date.now() - lastMessage > STALE_STREAM_MS) {
    setConnection("lost", "connection lost — reconnecting…");
    connect();
  }
}, 1000);

// ---------------------------------------------------------------- ESS controls
function openDialog(action) {
  dialogAction = action;
  const trigger = action === "trigger";
  setText("dlg-title", trigger ? "Trigger the emergency stop" : "Reset the emergency stop");
  setText("dlg-text", trigger
    ? "Every worker cancels its orders and closes every position with reduce-only market orders. Trading stays halted until a person resets the stop."
    : "Trading resumes in the state you choose. Make sure the cause is understood.");
  $("dlg-confirm").textContent = trigger ? "Trigger emergency stop" : "Reset";
  $("dlg-resume-row").classList.toggle("hidden", trigger);
  $("dlg-token").value = token;
  $("dlg-reason").value = "";
  setText("dlg-error", "");
  $("ess-dialog").showModal();
  (token ? $("dlg-actor") : $("dlg-token")).focus();
}

async function confirmDialog(ev) {
  ev.preventDefault();
  const body = { actor: $("dlg-actor").value.trim(), reason: $("dlg-reason").value.trim() };
  const secret = $("dlg-token").value.trim();
  if (!secret || !body.actor || !body.reason) { setText("dlg-error", "Token, name and reason are all required."); return; }
  if (dialogAction === "reset") body.resume = $("dlg-resume").value;
  $("dlg-confirm").disabled = true;
  try {
    const reply = await fetch(`/ess/${dialogAction}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + secret },
      body: JSON.stringify(body),
    });
    const data = await reply.json().catch(() => ({}));
    if (!reply.ok) {
      const detail = Array.isArray(data.detail) ? data.detail.map((d) => `${d.loc.slice(-1)[0]}: ${d.msg}`).join("; ") : data.detail;
      setText("dlg-error", `Refused (HTTP ${reply.status}): ${detail || reply.statusText}`);
      return;
    }
    token = secret;
    renderEss(data.ess);
    $("ess-dialog").close();
  } catch (err) {
    setText("dlg-error", "Could not reach the API: " + err.message);
  } finally {
    $("dlg-confirm").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("ess-trigger").addEventListener("click", () => openDialog("trigger"));
  $("ess-reset").addEventListener("click", () => openDialog("reset"));
  $("dlg-cancel").addEventListener("click", () => $("ess-dialog").close());
  $("dlg-form").addEventListener("submit", confirmDialog);
  window.addEventListener("resize", scheduleDraw);
  connect();
});
