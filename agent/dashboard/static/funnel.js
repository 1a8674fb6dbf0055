// The cascade funnel over a chosen period: how far decisions got, layer by layer, and per day.
"use strict";

const STAGE_COLOURS = { BUY: "#0b7a3e", HOLD: "#9ca3af", sentiment: "#f59e0b", technical: "#3b82f6", risk: "#ef4444",
  data_validation: "#8b5cf6", final_score: "#14b8a6", decision: "#6b7280", portfolio: "#b42318" };

async function refresh() {
  const params = new URLSearchParams();
  for (const name of ["since", "until", "ticker"]) {
    const value = document.getElementById(`f-${name}`).value.trim();
    if (value) params.set(name, value);
  }
  params.set("unique", document.getElementById("f-unique").checked ? "true" : "false");
  const f = await api(`/api/funnel?${params}`);
  if (!document.getElementById("f-since").value) document.getElementById("f-since").value = f.since;
  if (!document.getElementById("f-until").value) document.getElementById("f-until").value = f.until;
  fill("funnel-summary", `${f.decisions} decision(s) from ${f.since} to ${f.until}: ${f.buy} BUY, ${f.hold} HOLD; `,
    `${f.stopped_before_layers} stopped before the LLM layers (data or tool failure); blocked after the layers: `,
    `${f.blocked_after_layers.decision || 0} by the risk rules, ${f.blocked_after_layers.portfolio || 0} by the portfolio guard.`);
  const stages = ["decisions", ...f.layers.map((l) => plain(l.stage)), "BUY"];
  const values = [f.decisions, ...f.layers.map((l) => l.reached), f.buy];
  plot("funnel-chart", [{ type: "funnel", y: stages, x: values, textinfo: "value+percent initial" }],
    { title: { text: "Decisions reaching each layer" }, margin: { t: 30, r: 20, b: 30, l: 120 } });
  fill("funnel-table", table(["Layer", "Reached", "Passed", "Discarded", "LLM errors"],
    f.layers.map((l) => el("tr", { "data-stage": l.stage }, el("td", {}, l.stage), el("td", { class: "num" }, l.reached),
      el("td", { class: "num" }, l.passed), el("td", { class: "num" }, l.discarded), el("td", { class: "num" }, l.errors)))));
  const days = Object.keys(f.by_day);
  const outcomes = [...new Set(days.flatMap((d) => Object.keys(f.by_day[d])))];
  plot("by-day-chart", outcomes.map((o) => ({ type: "bar", name: plain(o === "BUY" ? "BUY" : `discarded at ${o}`), x: days,
    y: days.map((d) => f.by_day[d][o] || 0), marker: { color: STAGE_COLOURS[o] } })),
    { barmode: "stack", title: { text: "Where each day's decisions ended" } });
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("filters").addEventListener("change", () => refresh().catch(showError));
  document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
  poll(refresh);
});
