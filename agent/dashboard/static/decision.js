// One decision in full: every layer's model, score, reason and latency; the chart layer 5 was shown; the snapshots.
"use strict";

function keyValues(obj, emptyText) {
  if (!obj || !Object.keys(obj).length) return el("p", { class: "empty" }, emptyText || "none");
  const rows = Object.entries(obj).map(([k, v]) => el("tr", {}, el("th", {}, k),
    el("td", {},
      typeof v === "number" ? fmt.num(v, Math.abs(v) >= 1000 ? 2 : 4) : (typeof v === "object" && v !== null ? JSON.stringify(v) : fmt.text(v)))));
  return el("table", { class: "kv" }, el("tbody", {}, rows));
}

function layerRow(r) {
  return el("tr", { "data-layer": r.layer },
    el("td", {}, r.layer), el("td", {}, `${r.model} (${r.provider})`), el("td", { class: "num" }, fmt.num(r.score, 2)),
    el("td", { class: r.passed ? "passed" : "failed" }, r.passed ? "passed" : "discarded"),
    el("td", { class: "reason" }, fmt.text(r.reason)), el("td", { class: "num" }, `${fmt.num(r.latency_ms, 0)} ms${r.cached ? " (from the LLM cache)" : ""}` +
      (r.tokens_in != null ? `, ${r.tokens_in} → ${fmt.num(r.tokens_out, 0)} tokens` : "")),
    el("td", {}, fmt.text(r.error)), el("td", {}, list(r.flags).join(", ") || "–"));
}

function chartView(id, ts, image) {
  if (!image) return el("p", { class: "empty" }, "the final layer did not run with a model that could take a chart");
  if (!image.sent || !image.file) return el("p", { class: "empty" }, `No chart: ${fmt.text(image.reason)}`);
  const src = `/api/decisions/${encodeURIComponent(id)}/chart${ts ? "?ts=" + encodeURIComponent(ts) : ""}`;
  return el("figure", { id: "chart-figure" },
    el("img", { src, alt: `chart of ${image.bars} daily bars, ${image.first_bar} to ${image.last_bar}`, width: "1024",
      style: "max-width: 100%; height: auto" }),
    el("figcaption", {}, `${image.bars} bars from ${fmt.text(image.first_bar)} to ${fmt.text(image.last_bar)}; ` +
      `indicators: ${list(image.indicators).join(", ") || "none"}; ${fmt.text(image.reason)}`));
}

async function refresh() {
  const id = decodeURIComponent(window.location.pathname.split("/").pop());
  const ts = queryParam("ts");
  const detail = await api(`/api/decisions/${encodeURIComponent(id)}${ts ? "?ts=" + encodeURIComponent(ts) : ""}`);
  const r = detail.record;
  document.title = `${r.ticker} ${r.decision} · B3 cascade agent`;
  renderDefaults(list(r.defaults_in_use));
  fill("summary",
    el("h2", { id: "decision-title" }, `${r.ticker} `, badge(r.decision), ` on the bar of ${fmt.text(r.bar_date)}`),
    el("p", { id: "decision-reason", class: "reason" }, fmt.text(r.reason)),
    keyValues({
      "decision id": r.decision_id, decided: r.ts, confidence: r.confidence, "discarded at": r.discarded_at,
      position: r.position ? `${r.position.shares} shares at ${r.position.entry}, stop ${r.position.stop}, target ${r.position.take_profit} (size factor ${r.position.size_factor})` : null,
      "paper order": detail.order_status ? `${detail.order_status}${detail.order_note ? ": " + detail.order_note : ""}` : "none",
      "data source": r.data_source, "LLM provider": r.llm_provider, "defaults in use": list(r.defaults_in_use).join(", ") || "none",
      origin: r.origin, "config / prompt version": `${r.config_version} / ${r.prompt_version}`,
      "recorded": `${detail.occurrences} time(s) under this id (the loop re-decides an unchanged bar each cycle)`,
    }));
  fill("layers", table(["Layer", "Model", "Score", "Outcome", "Reason", "Latency", "Error", "Flags"],
    list(r.layers).map(layerRow), "No LLM layer ran: the decision stopped before the cascade (see the reason)."));
  fill("chart", chartView(id, ts, (list(r.layers).find((l) => l && l.image) || {}).image));
  fill("indicators", keyValues(r.indicators, "no indicator snapshot"));
  fill("risk", keyValues(r.risk, "no risk snapshot"));
  fill("data-report", keyValues(r.data_report, "no data report"));
  const news = r.news || {};
  fill("news", el("p", {}, fmt.text(news.summary)),
    keyValues({ provider: news.provider, selected: news.selected, errors: (news.errors || []).join("; ") || null }),
    list(news.dropped).length ? el("ul", { class: "dropped" }, news.dropped.map((d) => el("li", {},
      el("span", { class: "failed" }, "dropped: "), fmt.text(d.title), ` (${fmt.text(d.reason)})`))) : null);
  const frames = list(r.timeframes).filter((t) => t && typeof t === "object");
  const columns = [...new Set(frames.flatMap((t) => Object.keys(t)))];
  fill("timeframes", frames.length ? table(columns, frames.map((t) => el("tr", {}, columns.map((c) =>
    el("td", {}, typeof t[c] === "number" ? fmt.num(t[c], 4) : fmt.text(t[c]))))))
    : el("p", { class: "empty" }, "no confirmation timeframes"));
  document.getElementById("raw").textContent = JSON.stringify(r, null, 2);
}

document.addEventListener("DOMContentLoaded", () => poll(refresh));
