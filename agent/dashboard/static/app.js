// Shared by every page: fetching the API, building elements, polling, the header (navigation, the
// kill switch, the embedded-defaults banner).
// Record text (LLM reasons, headlines) is untrusted: it is only ever set with textContent, never innerHTML.
"use strict";

const B3 = {
  pollMs: 5000,
  timer: null,
  plotConfig: { displaylogo: false, responsive: true },
};

async function api(path, options) {
  const response = await fetch(path, Object.assign({ headers: { Accept: "application/json" } }, options || {}));
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail !== undefined ? body.detail : response.statusText;
    const message = typeof detail === "string" ? detail : JSON.stringify(detail);
    const error = new Error(`${response.status}: ${message}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

// el("td", {class: "num"}, "text", child, ...): children that are strings become text nodes.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    // anything that is not an element (an object from an odd record, say) is shown as text
    node.appendChild(child instanceof Node ? child : document.createTextNode(
      typeof child === "object" ? JSON.stringify(child) : String(child)));
  }
  return node;
}

function fill(id, ...children) {
  const node = document.getElementById(id);
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

function table(headers, rows, emptyText) {
  if (!rows.length) return el("p", { class: "empty" }, emptyText || "nothing yet");
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

// Plotly renders a few HTML tags in names and labels: text from records is escaped before it gets there.
function plain(value) {
  return String(value === null || value === undefined ? "" : value)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function list(value) { return Array.isArray(value) ? value : []; }

const fmt = {
  num: (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("pt-BR",
    { minimumFractionDigits: digits, maximumFractionDigits: digits })),
  pct: (v, digits = 1) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(digits)}%`),
  brl: (v) => (v === null || v === undefined ? "–" : `R$ ${fmt.num(v, 2)}`),
  time: (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "–"),
  text: (v) => (v === null || v === undefined || v === "" ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v)),
};

function badge(decision) {
  return el("span", { class: `badge ${decision === "BUY" ? "buy" : "hold"}` }, decision);
}

function stateBadge(state) {
  return el("span", { class: `badge state-${(state || "unknown").toLowerCase()}`, id: "ks-state" }, state || "no ledger");
}

function decisionLink(summary) {
  const href = `/decision/${encodeURIComponent(summary.decision_id)}?ts=${encodeURIComponent(summary.ts)}`;
  return el("a", { href, class: "decision-link", "data-ticker": summary.ticker }, summary.ticker);
}

function showError(error) {
  const box = document.getElementById("error");
  if (!box) return;
  if (error) { box.textContent = `Could not load data: ${error.message}`; box.hidden = false; }
  else { box.hidden = true; box.textContent = ""; }
}

// Run refresh() now and every poll interval; the page is never reloaded.
async function poll(refresh) {
  try {
    const status = await api("/api/status");
    B3.pollMs = 1000 * status.poll_s;
    B3.status = status;
  } catch (error) { showError(error); }
  const tick = async () => {
    try {
      await Promise.all([refresh(), refreshHeader()]);
      showError(null);
      const stamp = document.getElementById("updated");
      if (stamp) stamp.textContent = `updated ${new Date().toLocaleTimeString()}`;
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    } catch (error) { showError(error); }
    B3.timer = setTimeout(tick, B3.pollMs);
  };
  await tick();
}

// ---------------------------------------------------------------- header: navigation and kill switch

const PAGES = [["/", "Decisions"], ["/funnel", "Funnel"], ["/portfolio", "Portfolio"], ["/health", "Health"],
  ["/backtests", "Backtests"]];

function renderNav() {
  const here = window.location.pathname;
  fill("nav", PAGES.map(([href, label]) => el("a", { href, class: here === href ? "active" : null }, label)));
}

async function refreshHeader() {
  const ks = await api("/api/kill-switch");
  const controls = [];
  if (ks.available && ks.control.enabled) {
    if (ks.state !== "HALTED") controls.push(el("button", { id: "ks-halt", class: "danger", onclick: () => command("halt") }, "Halt"));
    if (ks.state === "RUNNING") controls.push(el("button", { id: "ks-no-new-buys", onclick: () => command("no_new_buys") }, "No new buys"));
    if (ks.state !== "RUNNING") controls.push(el("button", { id: "ks-resume", onclick: () => command("resume") }, "Resume"));
  }
  const why = ks.available ? `${ks.reason} (by ${ks.changed_by}${ks.changed_at ? ", " + fmt.time(ks.changed_at) : ""})` : ks.note;
  fill("killswitch", el("span", { class: "label" }, "Kill switch"), stateBadge(ks.state),
    el("span", { class: "why", title: ks.control.why }, why), ...controls);
}

async function command(action) {
  const words = { halt: "HALT the agent (no cascade, pending orders cancelled)", no_new_buys: "stop new buys",
    resume: "RESUME trading" };
  if (!window.confirm(`Really ${words[action]}?`)) return;
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  const control = B3.status ? B3.status.control : { token_required: false };
  if (control.token_required) {
    let token = sessionStorage.getItem("b3-dashboard-token");
    if (!token) token = window.prompt("Dashboard token (DASHBOARD_TOKEN):") || "";
    if (!token) return;
    sessionStorage.setItem("b3-dashboard-token", token);
    headers.Authorization = `Bearer ${token}`;
  }
  try {
    await api("/api/kill-switch", { method: "POST", headers, body: JSON.stringify({ action, reason: "" }) });
    await refreshHeader();
  } catch (error) {
    if (error.status === 401) sessionStorage.removeItem("b3-dashboard-token");
    showError(error);
  }
}

// The embedded defaults (embedded LLM, simulated market) are announced on every page that shows records.
function renderDefaults(defaults) {
  const box = document.getElementById("defaults");
  if (!box) return;
  if (!defaults || !defaults.length) { box.hidden = true; return; }
  box.hidden = false;
  box.replaceChildren(el("strong", {}, "Embedded defaults in use: "), defaults.join(", "),
    " — decisions come from the small embedded models named in each layer and/or simulated prices, not from Ollama and real market data.");
}

function plot(id, traces, layout) {
  const node = document.getElementById(id);
  const base = { margin: { t: 30, r: 20, b: 40, l: 60 }, height: 320, paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)", font: { size: 12 } };
  return Plotly.react(node, traces, Object.assign(base, layout || {}), B3.plotConfig);
}

function queryParam(name) { return new URLSearchParams(window.location.search).get(name); }

document.addEventListener("DOMContentLoaded", renderNav);
