// Cash, equity against the Ibovespa, drawdown, open positions, pending orders and trades.
"use strict";

function card(label, value, id) {
  return el("div", { class: "card", id }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

async function refresh() {
  const [p, eq, tr] = await Promise.all([api("/api/portfolio"), api("/api/equity"), api("/api/trades?limit=200")]);
  fill("cards", card("Equity", fmt.brl(p.equity), "card-equity"), card("Cash", fmt.brl(p.cash), "card-cash"),
    card("Initial capital", fmt.brl(p.initial)), card("Open positions", p.positions.length, "card-positions"),
    card("Realised P&L", fmt.brl(tr.realised_pnl), "card-pnl"), card("Win rate", fmt.pct(tr.win_rate)),
    card("Max drawdown", fmt.pct(eq.max_drawdown), "card-drawdown"));
  document.getElementById("portfolio-note").textContent = p.note || "";
  document.getElementById("benchmark-note").textContent = [eq.note, eq.benchmark_note].filter(Boolean).join(" · ");
  const days = eq.points.map((x) => x.day);
  plot("equity-chart", [
    { type: "scatter", mode: "lines", name: "paper portfolio", x: days, y: eq.points.map((x) => x.equity) },
    { type: "scatter", mode: "lines", name: `Ibovespa (rescaled${eq.benchmark_source ? ", " + eq.benchmark_source : ""})`,
      x: eq.benchmark.map((x) => x.day), y: eq.benchmark.map((x) => x.value), line: { dash: "dot" } },
  ], { title: { text: "Equity (BRL)" } });
  plot("drawdown-chart", [{ type: "scatter", mode: "lines", fill: "tozeroy", name: "drawdown", x: days,
    y: eq.points.map((x) => -100 * x.drawdown), line: { color: "#b42318" } }],
  { title: { text: "Drawdown from peak (%)" }, height: 240 });
  fill("positions", table(["Ticker", "Qty", "Entry", "Last close", "Stop", "Target", "Value", "Unrealised P&L", "Since"],
    p.positions.map((x) => el("tr", { "data-ticker": x.ticker }, el("td", {}, x.ticker), el("td", { class: "num" }, x.qty),
      el("td", { class: "num" }, fmt.num(x.entry)), el("td", { class: "num" }, fmt.num(x.last_close)),
      el("td", { class: "num" }, fmt.num(x.stop)), el("td", { class: "num" }, fmt.num(x.take_profit)),
      el("td", { class: "num" }, fmt.brl(x.market_value)),
      el("td", { class: `num ${x.unrealised_pnl >= 0 ? "passed" : "failed"}` }, `${fmt.brl(x.unrealised_pnl)} (${fmt.pct(x.unrealised_return)})`),
      el("td", {}, x.entry_bar))), "no open positions"));
  fill("pending", table(["Ticker", "Qty", "Decided on bar", "Stop", "Target", "Decision"],
    p.pending_orders.map((o) => el("tr", {}, el("td", {}, o.ticker), el("td", { class: "num" }, o.qty), el("td", {}, o.bar_date),
      el("td", { class: "num" }, fmt.num(o.stop)), el("td", { class: "num" }, fmt.num(o.take_profit)),
      el("td", {}, el("a", { href: `/decision/${encodeURIComponent(o.decision_id)}` }, o.decision_id)))),
    "no pending orders (a BUY fills at the next bar's open)"));
  document.getElementById("trades-summary").textContent = tr.available
    ? `${tr.total} fill(s), ${tr.closed} closed trade(s), realised P&L ${fmt.brl(tr.realised_pnl)}, win rate ${fmt.pct(tr.win_rate)}`
    : tr.note;
  fill("trades", table(["Bar", "Ticker", "Action", "Qty", "Price", "Fees", "Entry", "P&L", "Return"],
    tr.trades.map((t) => el("tr", { "data-trade": t.trade_id }, el("td", {}, t.bar_date), el("td", {}, t.ticker),
      el("td", {}, t.action), el("td", { class: "num" }, t.qty), el("td", { class: "num" }, fmt.num(t.price)),
      el("td", { class: "num" }, fmt.num(t.fees)), el("td", { class: "num" }, fmt.num(t.entry_price)),
      el("td", { class: `num ${t.profit === null ? "" : t.profit >= 0 ? "passed" : "failed"}` }, fmt.brl(t.profit)),
      el("td", { class: "num" }, fmt.pct(t.return)))), "no trades yet"));
}

document.addEventListener("DOMContentLoaded", () => poll(refresh));
