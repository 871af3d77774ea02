// recsys console: plain ES module, no build step. Every number it shows comes
// from the API's own endpoints; clicking a card posts a real click event.

const main = document.getElementById("main");
const statusLine = document.getElementById("status");
const TOKEN_KEY = "recsys.token";
const USER_KEY = "recsys.user";

// --- HTTP -------------------------------------------------------------------
function authHeaders() {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "Content-Type": "application/json", ...authHeaders(), ...(options.headers || {}) },
  });
  const text = await response.text();
  let body = text;
  try { body = text ? JSON.parse(text) : null; } catch { /* Prometheus text, HTML */ }
  if (!response.ok) {
    const detail = body && typeof body === "object" ? JSON.stringify(body.detail ?? body) : text;
    throw new Error(`${options.method || "GET"} ${path}: ${response.status} ${detail}`);
  }
  return body;
}

function say(message, isError = false) {
  statusLine.textContent = message;
  statusLine.classList.toggle("error", isError);
}

// --- rendering helpers -------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

const itemsOf = (body) => (body && (body.items || body.recommendations)) || [];
const fmtPrice = (p) => (p === null || p === undefined ? "–" : Number(p).toFixed(2));
const fmtScore = (s) => (s === null || s === undefined ? "–" : Number(s).toFixed(3));

function cards(items, { row = false, label, context = {} } = {}) {
  const list = el("ul", { class: row ? "cards row" : "cards", "aria-label": label });
  const template = document.getElementById("card-template");
  for (const item of items) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.itemId = item.item_id;
    card.querySelector(".card-title").textContent = item.title || item.item_id;
    card.querySelector(".card-category").textContent = item.category ?? "–";
    card.querySelector(".card-price").textContent = fmtPrice(item.price);
    card.querySelector(".card-score").textContent = fmtScore(item.score);
    card.querySelector(".card-stage").textContent = item.stage ?? item.source ?? "–";
    const open = card.querySelector(".card-open");
    open.setAttribute("aria-label", `Open ${item.title || item.item_id}`);
    open.addEventListener("click", () => clickItem(item, context));
    list.append(card);
  }
  if (!items.length) list.append(el("li", { class: "meta" }, "Nothing to show."));
  return list;
}

// A click on a card is a real click event through POST /events, attributed to
// the response that showed the item, then the item page opens.
async function clickItem(item, context) {
  const user = localStorage.getItem(USER_KEY) || "console-visitor";
  const event = {
    event_id: crypto.randomUUID().replaceAll("-", ""),
    user_id: user,
    item_id: item.item_id,
    event_type: "click",
    ts: new Date().toISOString(),
    ...(context.request_id ? { request_id: context.request_id } : {}),
    ...(context.model_version ? { model_version: String(context.model_version) } : {}),
    context: { source: "console", ...(context.arm ? { arm: context.arm } : {}) },
  };
  try {
    const result = await api("/events", { method: "POST", body: JSON.stringify(event) });
    say(`click on ${item.item_id} sent (${result?.status ?? "accepted"})`);
    document.body.dataset.lastEvent = `sent:${item.item_id}`;
  } catch (error) {
    say(`click on ${item.item_id} not sent: ${error.message}`, true);
    document.body.dataset.lastEvent = `failed:${item.item_id}`;
    return;  // stay on the page so the error stays visible
  }
  location.hash = `#/item/${encodeURIComponent(item.item_id)}`;
}

// --- pages ----------------------------------------------------------------------
async function recommendationsPage(params) {
  const user = params.get("user") || localStorage.getItem(USER_KEY) || "";
  const form = el("form", { class: "inline", "aria-label": "Recommendation request" },
    el("label", {}, "User id", el("input", { name: "user", value: user, required: "" })),
    el("label", {}, "How many", el("input", { name: "k", type: "number", min: "1", max: "100",
      value: params.get("k") || "10" })),
    el("label", {}, "Category", el("input", { name: "category", value: params.get("category") || "" })),
    el("label", {}, "Max price", el("input", { name: "max_price", type: "number", min: "0", step: "any",
      value: params.get("max_price") || "" })),
    el("button", { type: "submit" }, "Recommend"));
  const results = el("section", { "aria-label": "Recommendations", "aria-live": "polite" });
  main.replaceChildren(el("h2", {}, "Recommendations"), form, results);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const query = new URLSearchParams([...data].filter(([, v]) => v !== ""));
    location.hash = `#/recommendations?${query}`;
  });
  if (user) await showRecommendations(results, user, params);
}

async function showRecommendations(target, user, params) {
  localStorage.setItem(USER_KEY, user);
  const filters = {};
  if (params.get("category")) filters.categories = [params.get("category")];
  if (params.get("max_price")) filters.max_price = Number(params.get("max_price"));
  const body = { user_id: user, k: Number(params.get("k") || 10), filters,
    context: { surface: "console" } };
  say(`asking for ${body.k} recommendations for ${user}…`);
  try {
    const answer = await api("/recommendations", { method: "POST", body: JSON.stringify(body) });
    target.replaceChildren(
      el("p", { class: "meta", "data-testid": "response-meta" },
        `model ${answer.model_version} · arm ${answer.arm} · ` +
        `${answer.cold_start ? "cold start" : "known user"} · request ${answer.request_id}`),
      cards(itemsOf(answer), { label: `Recommendations for ${user}`, context: answer }));
    say(`${itemsOf(answer).length} recommendations for ${user}`);
  } catch (error) {
    target.replaceChildren();
    say(error.message, true);
  }
}

async function itemPage(itemId) {
  const similar = el("section", { "aria-labelledby": "similar-h" }, el("h3", { id: "similar-h" }, "Similar items"));
  const fbt = el("section", { "aria-labelledby": "fbt-h" }, el("h3", { id: "fbt-h" }, "Frequently bought together"));
  main.replaceChildren(el("h2", {}, `Item ${itemId}`), similar, fbt);
  const id = encodeURIComponent(itemId);
  const [sim, together] = await Promise.allSettled([
    api(`/similar_items/${id}`), api(`/frequently_bought_together/${id}`)]);
  for (const [result, section, label] of [[sim, similar, "Similar items"], [together, fbt, "Bought together"]]) {
    if (result.status === "fulfilled") section.append(cards(itemsOf(result.value), { row: true, label }));
    else section.append(el("p", { class: "meta" }, result.reason.message));
  }
  if (sim.status === "rejected") say(sim.reason.message, true);
  else say(`item ${itemId}`);
}

async function coldStartPage(params) {
  const category = params.get("category") || "";
  const form = el("form", { class: "inline", "aria-label": "Popular items" },
    el("label", {}, "Category (empty: all)", el("input", { name: "category", value: category })),
    el("button", { type: "submit" }, "Show popular"));
  const results = el("section", { "aria-label": "Popular items", "aria-live": "polite" });
  main.replaceChildren(el("h2", {}, "Cold start"),
    el("p", { class: "meta" }, "What a new visitor sees: recency-weighted, category-aware popularity."),
    form, results);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const value = new FormData(form).get("category");
    location.hash = value ? `#/cold-start?category=${encodeURIComponent(value)}` : "#/cold-start";
  });
  try {
    const query = category ? `?category=${encodeURIComponent(category)}&k=12` : "?k=12";
    results.replaceChildren(cards(itemsOf(await api(`/popular${query}`)), { label: "Popular items" }));
    say(category ? `popular in ${category}` : "popular overall");
  } catch (error) {
    say(error.message, true);
  }
}

async function modelsPage() {
  main.replaceChildren(el("h2", {}, "Models"));
  try {
    const models = await api("/models");
    const aliases = models.aliases || {};
    main.append(
      el("p", { class: "meta" }, `registered model ${models.registered_model}`),
      table(["alias", "version"], Object.entries(aliases).map(([a, v]) => [a, v ?? "–"]), "Aliases"),
      table(["arm", "served version", "traffic share", "loaded at"],
        (models.arms || []).map((a) => [a.arm, a.version, `${Math.round((a.share ?? 0) * 100)} %`, a.loaded_at]),
        "Arms"),
      table(["refused version", "reason", "at"],
        (models.refused || []).map((r) => [r.version, r.reason, r.at]), "Refused models"));
    const history = models.rollbacks || [];
    main.append(table(["when", "from", "to", "why"],
      history.map((r) => [r.when ?? r.at, r.from_version, r.to_version, r.why ?? r.reason]),
      "Rollback history"));
    say("models");
  } catch (error) {
    say(error.message, true);
  }
}

function table(headers, rows, caption) {
  return el("table", {},
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.length
      ? rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, String(c ?? "–")))))
      : el("tr", {}, el("td", { colspan: String(headers.length) }, "none"))));
}

// --- monitoring: Prometheus text → charts -------------------------------------------
export function parsePrometheus(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return samples;
}

// Quantile of a Prometheus histogram from its cumulative buckets.
export function histogramQuantile(buckets, q) {
  const sorted = buckets.filter((b) => b.le !== "+Inf").map((b) => ({ le: Number(b.le), count: b.value }))
    .sort((a, b) => a.le - b.le);
  const total = buckets.find((b) => b.le === "+Inf")?.value ?? sorted.at(-1)?.count ?? 0;
  if (!total) return null;
  const rank = q * total;
  let prevLe = 0, prevCount = 0;
  for (const b of sorted) {
    if (b.count >= rank) {
      const inBucket = b.count - prevCount;
      return inBucket ? prevLe + (b.le - prevLe) * ((rank - prevCount) / inBucket) : b.le;
    }
    prevLe = b.le; prevCount = b.count;
  }
  return sorted.at(-1)?.le ?? null;
}

function barChart(entries, { caption, unit = "", id }) {
  const width = 520, barH = 22, pad = 170;
  const max = Math.max(...entries.map(([, v]) => v), 1e-9);
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${caption}: ` + entries.map(([k, v]) => `${k} ${v.toFixed(4)}${unit}`).join(", "));
  svg.setAttribute("width", width);
  svg.setAttribute("height", Math.max(entries.length, 1) * (barH + 6) + 10);
  entries.forEach(([label, value], i) => {
    const y = 6 + i * (barH + 6);
    const text = document.createElementNS(svgNS, "text");
    text.setAttribute("x", 4); text.setAttribute("y", y + 15); text.textContent = label;
    const rect = document.createElementNS(svgNS, "rect");
    rect.setAttribute("x", pad); rect.setAttribute("y", y);
    rect.setAttribute("width", Math.max(1, ((width - pad - 80) * value) / max));
    rect.setAttribute("height", barH); rect.setAttribute("fill", "#0a58ca");
    const val = document.createElementNS(svgNS, "text");
    val.setAttribute("x", pad + 4 + ((width - pad - 80) * value) / max); val.setAttribute("y", y + 15);
    val.textContent = `${value.toFixed(4)}${unit}`;
    svg.append(text, rect, val);
  });
  return el("figure", { id }, el("figcaption", {}, caption), svg,
    entries.length ? null : el("p", { class: "meta" }, "no data yet"));
}

async function monitoringPage() {
  main.replaceChildren(el("h2", {}, "Monitoring"));
  try {
    const text = await api("/metrics", { headers: { Accept: "text/plain" } });
    const samples = parsePrometheus(String(text));
    const latency = {};
    for (const s of samples.filter((s) => s.name === "recsys_request_latency_seconds_bucket")) {
      (latency[s.labels.endpoint] ||= []).push({ le: s.labels.le, value: s.value });
    }
    const p99 = Object.entries(latency)
      .map(([endpoint, buckets]) => [endpoint, (histogramQuantile(buckets, 0.99) ?? 0) * 1000])
      .filter(([, v]) => v > 0);
    main.append(barChart(p99, { caption: "Latency p99 by endpoint (ms)", unit: " ms", id: "latency-chart" }));
    let monitor = [];
    try {
      monitor = parsePrometheus(String(await api("/monitoring/metrics")));
    } catch (error) {
      main.append(el("p", { class: "meta" }, `monitor not reachable: ${error.message}`));
    }
    const ctr = monitor.filter((s) => s.name === "recsys_ctr")
      .map((s) => [`${s.labels.arm} v${s.labels.model_version}`, s.value]);
    main.append(barChart(ctr, { caption: "CTR per arm", id: "ctr-chart" }));
    const psi = monitor.filter((s) => s.name === "recsys_feature_psi")
      .map((s) => [s.labels.feature, s.value]).sort((a, b) => b[1] - a[1]).slice(0, 15);
    main.append(barChart(psi, { caption: "Drift per feature (PSI)", id: "drift-chart" }));
    say("monitoring");
  } catch (error) {
    say(error.message, true);
  }
}

// --- router ------------------------------------------------------------------------
async function route() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean);
  const page = parts[0] || "recommendations";
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (page === "item" && parts[1]) await itemPage(decodeURIComponent(parts[1]));
  else if (page === "cold-start") await coldStartPage(params);
  else if (page === "models") await modelsPage();
  else if (page === "monitoring") await monitoringPage();
  else await recommendationsPage(params);
  main.focus({ preventScroll: true });
  document.body.dataset.ready = page;
}

document.getElementById("token").value = localStorage.getItem(TOKEN_KEY) || "";
document.getElementById("save-token").addEventListener("click", () => {
  const value = document.getElementById("token").value.trim();
  if (value) localStorage.setItem(TOKEN_KEY, value); else localStorage.removeItem(TOKEN_KEY);
  say(value ? "token saved in this browser" : "token cleared");
});
window.addEventListener("hashchange", route);
route();
