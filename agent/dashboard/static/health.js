// Loop health: the last cycle, how long ago, each ticker's data age, cycle durations and recent errors.
"use strict";

async function refresh() {
  const h = await api("/api/health?cycles=100");
  const last = h.last_cycle;
  fill("loop-status", el("p", {}, el("span", { id: "loop-state", class: `status-${h.status}` }, h.status.replace("_", " ")),
    " — ", h.status_reason),
    last ? el("p", { class: "note" }, `cycle ${last.cycle} at ${fmt.time(last.ts)} took ${fmt.num(last.took_s, 1)} s: `,
      `${last.buy} BUY, ${last.hold} HOLD, ${last.failed} failed, ${last.skipped} skipped; provider ${last.provider}, `,
      `data ${last.data_source}, every ${fmt.num(last.interval_s, 0)} s`) : null);
  fill("staleness", table(["Ticker", "Last bar", "Age (days)"], h.staleness.map((s) =>
    el("tr", {}, el("td", {}, s.ticker), el("td", {}, s.last_bar), el("td", { class: "num" }, s.age_days))), "no bars seen yet"));
  const cycles = h.cycles.slice().reverse();
  plot("cycles-chart", [{ type: "bar", name: "cycle duration (s)", x: cycles.map((c) => plain(c.ts)), y: cycles.map((c) => c.took_s),
    marker: { color: cycles.map((c) => (c.error || c.failed ? "#b42318" : "#3b82f6")) } }],
  { title: { text: "Cycle duration (s); red: a failure" }, height: 260 });
  fill("cycles", table(["Cycle", "Finished", "Took (s)", "BUY", "HOLD", "Failed", "Skipped", "Error"],
    h.cycles.slice(0, 20).map((c) => el("tr", {}, el("td", { class: "num" }, c.cycle), el("td", {}, fmt.time(c.ts)),
      el("td", { class: "num" }, fmt.num(c.took_s, 1)), el("td", { class: "num" }, c.buy), el("td", { class: "num" }, c.hold),
      el("td", { class: "num" }, c.failed), el("td", { class: "num" }, c.skipped), el("td", {}, fmt.text(c.error)))),
    h.note || "no cycles recorded yet"));
  document.getElementById("errors-log").textContent = h.errors_log.length ? h.errors_log.join("\n") : "no errors logged";
}

document.addEventListener("DOMContentLoaded", () => poll(refresh));
