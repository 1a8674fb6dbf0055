// Backtest reports found under dashboard.reports_dir, with their headline numbers and baselines.
"use strict";

async function refresh() {
  const b = await api("/api/backtests");
  document.getElementById("reports-dir").textContent =
    `From ${b.reports_dir} (python -m agent.backtest ... --report ${b.reports_dir}/NAME).`;
  fill("reports", table(["Report", "Mode", "Tickers", "Window", "Total return", "Max drawdown", "Sharpe", "Trades", "Baselines", "Warnings", "Made"],
    b.reports.map((r) => {
      const m = r.metrics || {};
      const baselines = Object.entries(m.baselines || {}).map(([k, v]) => `${k} ${fmt.pct(v)}`).join(", ");
      return el("tr", { "data-report": r.name },
        el("td", {}, r.html ? el("a", { href: r.html, target: "_blank", rel: "noopener" }, r.name) : r.name),
        el("td", {}, fmt.text(m.mode)), el("td", {}, list(m.tickers).join(", ")), el("td", {}, `${fmt.text(m.start)} → ${fmt.text(m.end)}`),
        el("td", { class: "num" }, fmt.pct(m.total_return)), el("td", { class: "num" }, fmt.pct(m.max_drawdown)),
        el("td", { class: "num" }, fmt.num(m.sharpe)), el("td", { class: "num" }, fmt.text(m.trades)), el("td", {}, baselines || "–"),
        el("td", { class: "num" }, fmt.text(m.warnings)), el("td", {}, fmt.time(r.modified)));
    }), "No reports yet: run a backtest with --report reports/NAME."));
}

document.addEventListener("DOMContentLoaded", () => poll(refresh));
