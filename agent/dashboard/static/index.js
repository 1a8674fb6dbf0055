// Decisions: the latest per ticker, and the recent ones (filterable), refreshed live.
"use strict";

function summaryRow(s) {
  return el("tr", { "data-ticker": s.ticker, "data-decision-id": s.decision_id },
    el("td", {}, decisionLink(s)), el("td", {}, badge(s.decision)),
    el("td", { class: "num" }, fmt.num(s.confidence, 2)), el("td", {}, fmt.text(s.discarded_at)),
    el("td", { class: "reason" }, s.reason), el("td", {}, fmt.text(s.bar_date)), el("td", {}, fmt.time(s.ts)),
    el("td", {}, s.origin));
}

const HEADERS = ["Ticker", "Decision", "Confidence", "Discarded at", "Reason", "Bar", "Decided", "Origin"];

const TICKER = /^[A-Za-z0-9^][A-Za-z0-9.^]{1,14}$/;
let asked = 0;  // answers to an older request (typing is faster than the network) are dropped

async function refresh() {
  const ticker = document.getElementById("f-ticker").value.trim();
  const decision = document.getElementById("f-decision").value;
  const origin = document.getElementById("f-origin").value;
  const params = new URLSearchParams({ limit: "50" });
  if (ticker && TICKER.test(ticker)) params.set("ticker", ticker);
  if (decision) params.set("decision", decision);
  if (origin) params.set("origin", origin);
  const mine = ++asked;
  const [latest, recent] = await Promise.all([api(`/api/decisions/latest${origin ? "?origin=" + origin : ""}`),
    api(`/api/decisions?${params}`)]);
  if (mine !== asked) return;
  renderDefaults(latest.defaults_in_use);
  fill("latest", table(HEADERS, latest.decisions.map(summaryRow),
    "No decisions recorded yet. Start the loop with make run; its decisions appear here after the first cycle."));
  fill("recent", el("p", { class: "note" }, `${recent.total} decision record(s) match; the newest 50 are shown.`),
    table(HEADERS, recent.decisions.map(summaryRow), "no decisions match"));
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("filters").addEventListener("input", () => refresh().catch(showError));
  document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
  poll(refresh);
});
