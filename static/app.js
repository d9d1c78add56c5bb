// tetcore-analytics dashboard: the fleet, one node, chains, benchmarks. Reads only the public
// JSON API (/nodes, /nodes/sessions, /nodes/series, /nodes/log_stats, /nodes/logs,
// /nodes/propagation, /nodes/hardware, /chains..., /host_systems, /benchmarks...), refreshes
// itself every few seconds, and says when the server is unreachable.
// Everything a node sent is shown through textContent, never as HTML.

const REFRESH_MS = 5000;
/** Blocks behind its chain's best connected node before a node is highlighted. */
const BEHIND = 5;
const BASE = "/dashboard";
/** Rows the fleet table draws at most; filters narrow a larger fleet. */
const MAX_ROWS = 500;

// ---- DOM and formatting helpers -------------------------------------------------------------

/** h("a", {href: "/x", class: "y"}, "text", child, ...) */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const num = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"));
const text = (t) => (t === null || t === undefined || t === "" ? "—" : t);
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString("en-GB") : "—");
const dateTime = (iso) =>
  iso ? new Date(iso).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium" }) : "—";

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function nodeHref(peerId) {
  return `${BASE}/node/${encodeURIComponent(peerId)}`;
}

// ---- data and liveness --------------------------------------------------------------------

const status = {
  el: null,
  lastOk: null,
  ok() {
    this.lastOk = new Date();
    this.el.textContent = `Live · updated ${this.lastOk.toLocaleTimeString("en-GB")}`;
    this.el.className = "status ok";
  },
  down(reason) {
    const since = this.lastOk ? ` · showing data from ${this.lastOk.toLocaleTimeString("en-GB")}` : "";
    this.el.textContent = `Server unreachable (${reason})${since} · retrying`;
    this.el.className = "status down";
  },
};

class Unreachable extends Error {}

/** GET a JSON API path; an Unreachable error for network failures and 5xx. */
async function api(path) {
  return (await apiResponse(path)).body;
}

/** GET a JSON API path: the parsed body and the response's headers. */
async function apiResponse(path) {
  let res;
  try {
    res = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch (e) {
    throw new Unreachable("no connection");
  }
  if (res.status >= 500) throw new Unreachable(`HTTP ${res.status}`);
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error((body && body.error) || `HTTP ${res.status}`);
  return { body, headers: res.headers };
}

// ---- charts -------------------------------------------------------------------------------

/**
 * A line chart as SVG. lines: [{label, cls, points: [[ms, value], ...]}]. The chart is sized to
 * its container when drawn; data-points tells how many points it shows.
 */
function lineChart(title, lines, width, domain, marks) {
  const W = Math.max(280, Math.round(width || 600));
  const H = 190;
  const pad = { l: 64, r: 12, t: 12, b: 26 };
  const all = lines.flatMap((l) => l.points);
  const figure = h("figure", { class: "chart", "data-points": all.length });
  const legend = h(
    "figcaption",
    {},
    h("strong", {}, title),
    ...lines.map((l) => h("span", { class: `key ${l.cls}` }, l.label)),
  );
  figure.append(legend);
  if (all.length === 0) {
    figure.append(h("p", { class: "empty" }, "No data in this window."));
    return figure;
  }
  let [t0, t1] = domain || [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  if (t1 === t0) { t0 -= 30000; t1 += 30000; }
  // Whole-number ticks, about four of them, spanning the values.
  const lo = Math.min(...all.map((p) => p[1]));
  const hi = Math.max(...all.map((p) => p[1]));
  const step = Math.max(1, Math.ceil((hi - lo) / 3));
  const v0 = Math.floor(lo / step) * step;
  const v1 = Math.max(v0 + step, Math.ceil(hi / step) * step);
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
  const y = (v) => H - pad.b - ((v - v0) / (v1 - v0)) * (H - pad.t - pad.b);
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
    "aria-label": `${title}: ${lines.map((l) => `${l.label} from ${num(l.points[0]?.[1])} to ${num(l.points.at(-1)?.[1])}`).join("; ")}`,
  });
  for (let v = v0; v <= v1; v += step) {
    const yy = y(v);
    svg.append(s("line", { x1: pad.l, x2: W - pad.r, y1: yy, y2: yy, class: "grid" }));
    svg.append(s("text", { x: pad.l - 6, y: yy + 4, class: "tick", "text-anchor": "end" }, num(v)));
  }
  // Marked spans (finality stalls): shaded behind the lines, clipped to the chart.
  for (const [m0, m1] of marks || []) {
    const a = x(Math.max(m0, t0));
    const b = x(Math.min(m1, t1));
    if (b > a) svg.append(s("rect", { x: a.toFixed(1), y: pad.t, width: Math.max(1, b - a).toFixed(1), height: H - pad.t - pad.b, class: "mark" }));
  }
  // Spans over most of a day name the day too.
  const tick = (t) => (t1 - t0 > 20 * 3600e3 ? new Date(t).toLocaleString("en-GB", { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }) : new Date(t).toLocaleTimeString("en-GB"));
  svg.append(s("text", { x: pad.l, y: H - 6, class: "tick" }, tick(t0)));
  svg.append(s("text", { x: W - pad.r, y: H - 6, class: "tick", "text-anchor": "end" }, tick(t1)));
  for (const l of lines) {
    if (l.points.length === 0) continue;
    const d = l.points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    svg.append(s("path", { d, class: `line ${l.cls}` }));
    for (const p of l.points.length <= 60 ? l.points : [l.points.at(-1)]) {
      svg.append(s("circle", { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2.5, class: `dot ${l.cls}` }));
    }
  }
  figure.append(h("div", { class: "plot" }, svg));
  return figure;
}

function seriesOf(points, field) {
  return points.filter((p) => p[field] !== null).map((p) => [new Date(p.at).getTime(), p[field]]);
}

// ---- views --------------------------------------------------------------------------------
// Each view builds its frame once (controls keep their state and focus) and has a refresh()
// that fetches and redraws the data parts; the router calls refresh() every REFRESH_MS.

const FLEET_FIELDS = "peer_id,name,chain,version,implementation,authority,ip_addr,best_height,finalized_height,peers,txcount,last_message_at,connected";
const FLEET_WHOLE_MS = 60e3;

function fleetView(root) {
  // The fleet is fetched whole (only the fields shown) once a minute; in between, each refresh
  // asks only for the nodes that changed since the last answer (its x-as-of, less 5 s for
  // instances whose caches run a refresh behind) and merges them in by peer id.
  const state = { sort: "name", dir: 1, chain: "", q: "", nodes: [], byPeer: new Map(), asOf: null, wholeAt: 0 };
  const summary = h("section", { class: "summary", "aria-label": "Counts" });
  const chainSel = h("select", { id: "chain", "aria-label": "Chain" });
  const search = h("input", {
    id: "q", type: "search", placeholder: "Filter by name, version, peer id, address…",
    "aria-label": "Filter nodes", autocomplete: "off",
  });
  const columns = [
    ["name", "Name"], ["chain", "Chain"], ["version", "Version"], ["implementation", "Implementation", "wide"],
    ["authority", "Authority", "wide"], ["best_height", "Best", "num"], ["finalized_height", "Finalized", "num"],
    ["lag", "Finality lag", "num wide"], ["peers", "Peers", "num"], ["txcount", "Tx pool", "num wide"],
    ["last_message_at", "Last message", "wide"], ["connected", "Status"],
  ];
  const headRow = h("tr", {});
  for (const [key, label, cls] of columns) {
    const button = h("button", { type: "button", class: "sort", onclick: () => {
      state.dir = state.sort === key ? -state.dir : 1;
      state.sort = key;
      draw();
    } }, label);
    headRow.append(h("th", { scope: "col", class: cls || null, "data-key": key }, button));
  }
  const tbody = h("tbody", {});
  const table = h("table", { class: "nodes", id: "fleet" }, h("thead", {}, headRow), tbody);
  const count = h("p", { class: "muted", id: "shown" });
  chainSel.addEventListener("change", () => { state.chain = chainSel.value; draw(); });
  search.addEventListener("input", () => { state.q = search.value.trim().toLowerCase(); draw(); });
  root.append(
    h("h1", {}, "Fleet"),
    summary,
    h("div", { class: "controls" }, h("label", { for: "chain" }, "Chain "), chainSel, search),
    count,
    h("div", { class: "scroll" }, table),
  );

  function value(n, key) {
    if (key === "lag") return n.best_height !== null && n.finalized_height !== null ? n.best_height - n.finalized_height : null;
    if (key === "connected") return n.connected ? 1 : 0;
    if (key === "authority") return n.authority === null ? null : n.authority ? 1 : 0;
    return n[key];
  }

  function draw() {
    const nodes = state.nodes;
    // Counts per chain and version, over every known node.
    const perChain = new Map();
    const perVersion = new Map();
    for (const n of nodes) {
      perChain.set(text(n.chain), (perChain.get(text(n.chain)) || 0) + 1);
      perVersion.set(text(n.version), (perVersion.get(text(n.version)) || 0) + 1);
    }
    const chips = (m) => [...m.entries()].sort((a, b) => b[1] - a[1])
      .map(([k, v]) => h("li", {}, h("span", { class: "chip-k" }, k), h("span", { class: "chip-v" }, num(v))));
    const connected = nodes.filter((n) => n.connected).length;
    summary.replaceChildren(
      h("div", { class: "tile" }, h("span", { class: "big" }, num(nodes.length)), "nodes"),
      h("div", { class: "tile" }, h("span", { class: "big" }, num(connected)), "connected"),
      h("div", { class: "group" }, h("h2", {}, "Chains"), h("ul", { class: "chips" }, chips(perChain))),
      h("div", { class: "group" }, h("h2", {}, "Versions"), h("ul", { class: "chips" }, chips(perVersion))),
    );
    // Rebuilt only when the chains change, so an open menu is not closed under the user.
    const chains = [...perChain.keys()].sort();
    if (chainSel.dataset.options !== chains.join("\n")) {
      const current = chainSel.value;
      chainSel.replaceChildren(h("option", { value: "" }, "All chains"), ...chains.map((c) => h("option", { value: c }, c)));
      chainSel.dataset.options = chains.join("\n");
      chainSel.value = chains.includes(current) ? current : "";
    }
    state.chain = chainSel.value;
    // The best height of each chain's connected nodes: who is falling behind it.
    const best = new Map();
    for (const n of nodes) {
      if (n.connected && n.best_height !== null) best.set(n.chain, Math.max(best.get(n.chain) ?? 0, n.best_height));
    }
    const shown = nodes
      .filter((n) => !state.chain || text(n.chain) === state.chain)
      .filter((n) => !state.q || [n.name, n.peer_id, n.version, n.implementation, n.chain, n.ip_addr]
        .some((f) => f && String(f).toLowerCase().includes(state.q)))
      .sort((a, b) => {
        const va = value(a, state.sort);
        const vb = value(b, state.sort);
        if (va === vb) return String(a.name).localeCompare(String(b.name));
        if (va === null || va === undefined) return 1;
        if (vb === null || vb === undefined) return -1;
        return (va < vb ? -1 : 1) * state.dir;
      });
    for (const th of headRow.children) {
      th.setAttribute("aria-sort", th.dataset.key === state.sort ? (state.dir > 0 ? "ascending" : "descending") : "none");
    }
    count.textContent = shown.length > MAX_ROWS
      ? `${shown.length} of ${nodes.length} nodes match; the first ${MAX_ROWS} are shown, filter to narrow`
      : `${shown.length} of ${nodes.length} nodes shown`;
    tbody.replaceChildren(...shown.slice(0, MAX_ROWS).map((n) => {
      const behind = n.connected && n.best_height !== null && best.has(n.chain) ? best.get(n.chain) - n.best_height : 0;
      const lag = value(n, "lag");
      return h("tr", { class: behind > BEHIND ? "behind" : null, "data-peer": n.peer_id },
        h("td", {}, h("a", { href: nodeHref(n.peer_id), "data-link": true }, text(n.name))),
        h("td", {}, text(n.chain)),
        h("td", {}, text(n.version)),
        h("td", { class: "wide" }, text(n.implementation)),
        h("td", { class: "wide" }, n.authority === null ? "—" : n.authority ? "yes" : "no"),
        h("td", { class: "num best" }, num(n.best_height),
          behind > BEHIND ? h("span", { class: "badge warn", title: `${behind} blocks behind the chain's best` }, `−${num(behind)}`) : null),
        h("td", { class: "num" }, num(n.finalized_height)),
        h("td", { class: "num wide" }, num(lag)),
        h("td", { class: "num" }, num(n.peers)),
        h("td", { class: "num wide" }, num(n.txcount)),
        h("td", { class: "wide", title: dateTime(n.last_message_at) }, ago(n.last_message_at)),
        h("td", {}, h("span", { class: n.connected ? "badge ok" : "badge gone" }, n.connected ? "connected" : "gone")),
      );
    }));
  }

  return {
    title: "Fleet",
    async refresh() {
      const whole = !state.asOf || Date.now() - state.wholeAt > FLEET_WHOLE_MS;
      const since = whole ? "" : `&since=${encodeURIComponent(new Date(Date.parse(state.asOf) - 5000).toISOString())}`;
      const { body, headers } = await apiResponse(`/nodes?fields=${FLEET_FIELDS}${since}`);
      if (whole) {
        state.byPeer = new Map();
        state.wholeAt = Date.now();
      }
      for (const n of body) state.byPeer.set(n.peer_id, n);
      state.asOf = headers.get("x-as-of");
      state.nodes = [...state.byPeer.values()];
      draw();
    },
  };
}

const WINDOWS = [
  ["session", "This session"], ["1h", "1 hour"], ["6h", "6 hours"], ["24h", "24 hours"], ["7d", "7 days"],
];
const WINDOW_MS = { "1h": 3600e3, "6h": 6 * 3600e3, "24h": 86400e3, "7d": 7 * 86400e3 };

function nodeView(root, peerId) {
  const state = { window: "session", kind: "", open: new Set() };
  const head = h("section", { class: "node-head" });
  const windowSel = h("select", { id: "window", "aria-label": "Chart window" },
    ...WINDOWS.map(([v, l]) => h("option", { value: v }, l)));
  const charts = h("div", { class: "charts" });
  const kinds = h("tbody", {});
  const kindSel = h("select", { id: "kind", "aria-label": "Message kind" });
  const messages = h("ol", { class: "messages", id: "messages" });
  const sessions = h("tbody", {});
  const propagation = h("tbody", {});
  const hardware = h("div", {});
  windowSel.addEventListener("change", () => { state.window = windowSel.value; view.refresh().catch(report); });
  kindSel.addEventListener("change", () => { state.kind = kindSel.value; view.refresh().catch(report); });
  root.append(
    h("p", { class: "crumbs" }, h("a", { href: `${BASE}/`, "data-link": true }, "Fleet"), " / ", peerId),
    head,
    h("section", {}, h("div", { class: "section-head" }, h("h2", {}, "Over time"), h("span", {}, h("label", { for: "window" }, "Window "), windowSel)), charts),
    h("div", { class: "two" },
      h("section", {}, h("h2", {}, "Messages by kind"),
        h("table", { class: "kinds" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Kind"), h("th", { scope: "col", class: "num" }, "Count"), h("th", { scope: "col" }, h("span", { class: "sr" }, "Share")))), kinds)),
      h("section", {}, h("div", { class: "section-head" }, h("h2", {}, "Recent messages"), h("span", {}, h("label", { for: "kind" }, "Kind "), kindSel)), messages),
    ),
    h("div", { class: "two" },
      h("section", {}, h("h2", {}, "Block propagation (last hour)"), h("div", { class: "scroll" }, h("table", { id: "propagation" },
        h("thead", {}, h("tr", {}, ...["Chain", "Median", "p90", "Rank", "Seen", "Missed", "Clock offset"].map((c) => h("th", { scope: "col" }, c)))), propagation))),
      h("section", {}, h("h2", {}, "Hardware"), h("div", { id: "node-hardware" }, hardware))),
    h("section", {}, h("h2", {}, "Sessions"), h("div", { class: "scroll" }, h("table", { class: "sessions" },
      h("thead", {}, h("tr", {}, ...["Id", "Connected", "Ended", "Address", "Endpoint", "Name", "Version"].map((c) => h("th", { scope: "col" }, c)))),
      sessions))),
  );

  function drawHead(node, newest) {
    const n = node || newest || {};
    const tiles = [
      ["Best", num(node?.best_height)], ["Finalized", num(node?.finalized_height)],
      ["Finality lag", node && node.best_height !== null && node.finalized_height !== null ? num(node.best_height - node.finalized_height) : "—"],
      ["Peers", num(node?.peers)], ["Tx pool", num(node?.txcount)], ["Last message", ago(node?.last_message_at)],
    ];
    head.replaceChildren(
      h("h1", {}, text(n.name), " ", h("span", { class: node?.connected ? "badge ok" : "badge gone" }, node?.connected ? "connected" : "gone")),
      h("p", { class: "muted" }, [text(n.chain), text(n.version), text(n.implementation), n.authority ? "authority" : null].filter(Boolean).join(" · ")),
      h("p", { class: "muted mono" }, peerId),
      h("div", { class: "tiles" }, ...tiles.map(([k, v]) => h("div", { class: "tile" }, h("span", { class: "big" }, v), k))),
    );
  }

  function drawCharts(points) {
    const width = charts.clientWidth > 0 ? (charts.clientWidth >= 760 ? (charts.clientWidth - 16) / 2 : charts.clientWidth) : 600;
    // One time axis for both charts.
    const times = points.map((p) => new Date(p.at).getTime());
    const domain = times.length ? [Math.min(...times), Math.max(...times)] : null;
    charts.replaceChildren(
      lineChart("Block height", [
        { label: "best", cls: "c1", points: seriesOf(points, "best_height") },
        { label: "finalized", cls: "c2", points: seriesOf(points, "finalized_height") },
      ], width, domain),
      lineChart("Peers", [{ label: "peers", cls: "c3", points: seriesOf(points, "peers") }], width, domain),
    );
  }

  function drawKinds(stats) {
    const max = Math.max(1, ...stats.map((k) => k.qty));
    kinds.replaceChildren(...stats.map((k) => {
      const bar = h("meter", { min: 0, max, value: k.qty, "aria-label": `${k.qty} of ${max}` });
      return h("tr", {}, h("td", { class: "mono" }, text(k.log_type)), h("td", { class: "num" }, num(k.qty)), h("td", { class: "bar" }, bar));
    }));
    const names = stats.filter((k) => k.log_type).map((k) => k.log_type).sort();
    if (kindSel.dataset.options !== names.join("\n")) {
      kindSel.replaceChildren(h("option", { value: "" }, "All kinds"), ...names.map((n) => h("option", { value: n }, n)));
      kindSel.dataset.options = names.join("\n");
      kindSel.value = names.includes(state.kind) ? state.kind : "";
    }
    state.kind = kindSel.value;
  }

  function drawMessages(logs) {
    if (logs.length === 0) {
      messages.replaceChildren(h("li", { class: "empty" }, "No messages."));
      return;
    }
    messages.replaceChildren(...logs.map((m) => {
      const key = `${m.created_at}|${m.msg}`;
      const details = h("details", { open: state.open.has(key) },
        h("summary", {}, h("time", { datetime: m.created_at }, time(m.created_at)), " ", h("span", { class: "mono kind" }, text(m.msg))),
        h("pre", {}, JSON.stringify(m.logs, null, 2)));
      details.addEventListener("toggle", () => (details.open ? state.open.add(key) : state.open.delete(key)));
      return h("li", {}, details);
    }));
  }

  function drawPropagation(p) {
    propagation.replaceChildren(...p.chains.map((c) => h("tr", {},
      h("td", {}, h("a", { href: chainHref(c.genesis_hash), "data-link": true, class: "mono" }, `${c.genesis_hash.slice(0, 10)}…`)),
      h("td", { class: "num" }, ms(c.median_ms)), h("td", { class: "num" }, ms(c.p90_ms)),
      h("td", { class: "num" }, c.rank ? `${c.rank} of ${c.nodes_ranked}` : "—"),
      h("td", { class: "num" }, num(c.blocks_seen)), h("td", { class: "num" }, num(c.blocks_missed)), h("td", { class: "num" }, ms(c.clock_offset_ms)))));
    if (p.chains.length === 0) propagation.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No block reported in the last hour.")));
  }

  function drawHardware(hw) {
    const r = hw.reports.at(-1);
    if (!r) {
      hardware.replaceChildren(h("p", { class: "empty" }, "This node has not reported its hardware."));
      return;
    }
    const rows = [["Reported", dateTime(r.reported_at)], ["CPU", text(r.cpu)], ["Cores", num(r.core_count)],
      ["Memory", r.memory ? `${(r.memory / 2 ** 30).toFixed(0)} GiB` : "—"], ["Kernel", text(r.linux_kernel)], ["Distribution", text(r.linux_distro)],
      ["Virtual machine", r.is_virtual_machine === null ? "—" : r.is_virtual_machine ? "yes" : "no"],
      ["CPU score (MiB/s)", num(r.cpu_hashrate_score)], ["Parallel CPU score", num(r.parallel_cpu_hashrate_score)],
      ["Memory copy (MiB/s)", num(r.memory_memcpy_score)], ["Disk seq. write (MiB/s)", num(r.disk_sequential_write_score)],
      ["Disk rnd. write (MiB/s)", num(r.disk_random_write_score)],
      ["Below reference", r.below_reference.length ? r.below_reference.join(", ") : "none"], ["Reports", num(hw.reports.length)]];
    hardware.replaceChildren(h("table", { class: "facts" }, h("tbody", {}, ...rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))))));
  }

  function drawSessions(rows) {
    sessions.replaceChildren(...rows.map((r) => h("tr", {},
      h("td", { class: "num" }, r.id), h("td", {}, dateTime(r.created_at)), h("td", {}, r.ended_at ? dateTime(r.ended_at) : "open"),
      h("td", { class: "mono" }, r.ip_addr), h("td", {}, r.audit ? "/audit" : "/"), h("td", {}, text(r.name)), h("td", {}, text(r.version)))));
  }

  const q = encodeURIComponent(peerId);
  const view = {
    title: peerId,
    async refresh() {
      const [fleet, sessionRows, stats, logs, prop, hw] = await Promise.all([
        api(`/nodes?peer_id=${q}`),
        api(`/nodes/sessions?peer_id=${q}&limit=20`),
        api(`/nodes/log_stats?peer_id=${q}`),
        api(`/nodes/logs?peer_id=${q}&limit=50${state.kind ? `&msg=${encodeURIComponent(state.kind)}` : ""}`),
        api(`/nodes/propagation?peer_id=${q}&limit=1`),
        api(`/nodes/hardware?peer_id=${q}`),
      ]);
      const now = Date.now();
      let start = now - (WINDOW_MS[state.window] || 0);
      if (state.window === "session") {
        const opened = sessionRows.length ? new Date(sessionRows[0].created_at).getTime() : now - 3600e3;
        start = Math.min(Math.max(opened, now - 86400e3), now - 60e3);
      }
      const points = await api(`/nodes/series?peer_id=${q}&start_time=${encodeURIComponent(new Date(start).toISOString())}&end_time=${encodeURIComponent(new Date(now).toISOString())}&points=240`);
      const node = fleet.find((n) => n.peer_id === peerId);
      this.title = node?.name || peerId;
      drawHead(node, sessionRows[0]);
      drawCharts(points);
      drawKinds(stats);
      drawMessages(logs);
      drawSessions(sessionRows);
      drawPropagation(prop);
      drawHardware(hw);
    },
  };
  return view;
}

// ---- chains: the network analytics ---------------------------------------------------------

const ms = (v) => (v === null || v === undefined ? "—" : `${Number(v).toLocaleString("en-US", { maximumFractionDigits: 1 })} ms`);
const chainHref = (g) => `${BASE}/chains/${encodeURIComponent(g)}`;
const CHAIN_WINDOWS = [["1h", "Last hour"], ["6h", "Last 6 hours"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"]];

function chainsView(root) {
  const rows = h("tbody", {});
  root.append(
    h("h1", {}, "Chains"),
    h("p", { class: "muted" }, "Every chain a node reported, by genesis hash. Open one for block propagation, finality, upgrades and hardware."),
    h("div", { class: "scroll" }, h("table", { id: "chains" },
      h("thead", {}, h("tr", {}, ...["Chain", "Genesis hash", "Connected", "Authorities", "Nodes (24 h)", "Best", "Finalized"].map((c) => h("th", { scope: "col" }, c)))), rows)),
  );
  return {
    title: "Chains",
    async refresh() {
      const chains = await api("/chains");
      rows.replaceChildren(...chains.map((c) => h("tr", { "data-genesis": c.genesis_hash },
        h("td", {}, h("a", { href: chainHref(c.genesis_hash), "data-link": true }, text(c.name))),
        h("td", { class: "mono" }, c.genesis_hash),
        h("td", { class: "num" }, num(c.nodes_connected)), h("td", { class: "num" }, num(c.authorities_connected)),
        h("td", { class: "num" }, num(c.nodes_24h)), h("td", { class: "num" }, num(c.best_height)), h("td", { class: "num" }, num(c.finalized_height)))));
      if (chains.length === 0) rows.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No chain yet: chains appear a few seconds after their nodes connect.")));
    },
  };
}

function chainView(root, genesis) {
  const state = { window: "1h" };
  const g = encodeURIComponent(genesis);
  const head = h("section", {});
  const windowSel = h("select", { id: "chain-window", "aria-label": "Window" }, ...CHAIN_WINDOWS.map(([v, l]) => h("option", { value: v }, l)));
  const charts = h("div", { class: "charts", id: "chain-charts" });
  const stalls = h("tbody", {});
  const versions = h("tbody", {});
  const outdated = h("tbody", {});
  const hardware = h("tbody", {});
  const reference = h("p", { class: "muted" });
  windowSel.addEventListener("change", () => { state.window = windowSel.value; view.refresh().catch(report); });
  const table = (id, cols, body) => h("div", { class: "scroll" }, h("table", { id }, h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col" }, c)))), body));
  root.append(
    h("p", { class: "crumbs" }, h("a", { href: `${BASE}/chains`, "data-link": true }, "Chains"), " / ", genesis),
    head,
    h("section", {}, h("div", { class: "section-head" }, h("h2", {}, "Over time"), h("span", {}, h("label", { for: "chain-window" }, "Window "), windowSel)), charts),
    h("section", {}, h("h2", {}, "Finality stalls"), table("stalls", ["Started", "Ended", "Length", "Finalized at", "Best from → to", "Nodes", "GRANDPA voters seen"], stalls)),
    h("div", { class: "two" },
      h("section", {}, h("h2", {}, "Versions"), table("versions", ["Implementation", "Version", "First seen", "Last seen", "Peak nodes"], versions)),
      h("section", {}, h("h2", {}, "Connected nodes on an older version"), table("outdated", ["Node", "Version", "Newest"], outdated))),
    h("section", {}, h("h2", {}, "Hardware"), reference, table("hardware", ["Node", "Authority", "CPU", "Cores", "Memory", "CPU score", "Memory score", "Disk seq.", "Disk rnd.", "Below reference"], hardware)),
  );

  const view = {
    title: genesis,
    async refresh() {
      const end = new Date();
      const start = new Date(end.getTime() - WINDOW_MS[state.window]);
      const w = `start_time=${encodeURIComponent(start.toISOString())}&end_time=${encodeURIComponent(end.toISOString())}`;
      const [chains, prop, fin, ver, hw] = await Promise.all([
        api("/chains"),
        api(`/chains/${g}/propagation?${w}&limit=1`),
        api(`/chains/${g}/finality?${w}`),
        api(`/chains/${g}/versions`),
        api(`/chains/${g}/hardware`),
      ]);
      const chain = chains.find((c) => c.genesis_hash === genesis) || {};
      this.title = chain.name || genesis;
      const sum = prop.summary;
      head.replaceChildren(
        h("h1", {}, text(chain.name)),
        h("p", { class: "muted mono" }, genesis),
        h("div", { class: "tiles" },
          ...[["Connected", num(chain.nodes_connected)], ["Best", num(chain.best_height)], ["Finalized", num(chain.finalized_height)],
            ["Blocks in window", num(sum.blocks)], ["Median p50 delay", ms(sum.p50_ms)], ["Median p90 delay", ms(sum.p90_ms)], ["Median p99 delay", ms(sum.p99_ms)]]
            .map(([k, v]) => h("div", { class: "tile" }, h("span", { class: "big" }, v), k))));
      const width = charts.clientWidth > 700 ? charts.clientWidth / 2 - 12 : charts.clientWidth;
      const at = (p) => new Date(p.at).getTime();
      const domain = [start.getTime(), end.getTime()];
      const stallSpans = fin.stalls.map((st) => [new Date(st.started_at).getTime(), st.ended_at ? new Date(st.ended_at).getTime() : end.getTime()]);
      // Version adoption: the six versions with the most node-hours, one line each.
      const byVersion = new Map();
      for (const p of ver.series) {
        const key = `${p.implementation} ${p.version}`;
        if (!byVersion.has(key)) byVersion.set(key, []);
        byVersion.get(key).push([new Date(p.at).getTime(), p.nodes]);
      }
      const top = [...byVersion.entries()].sort((a, b) => b[1].reduce((n, p) => n + p[1], 0) - a[1].reduce((n, p) => n + p[1], 0)).slice(0, 3);
      charts.replaceChildren(
        lineChart("Block propagation (ms after the first node; per step, the median block)", [
          { label: "p50", cls: "c1", points: prop.series.map((p) => [at(p), p.p50_ms]) },
          { label: "p90", cls: "c2", points: prop.series.map((p) => [at(p), p.p90_ms]) },
          { label: "p99", cls: "c3", points: prop.series.map((p) => [at(p), p.p99_ms]) },
        ], width, domain),
        lineChart("Finality lag (blocks; stalls shaded)", [
          { label: "best − finalized", cls: "c1", points: seriesOf(fin.series, "lag_blocks") },
        ], width, domain, stallSpans),
        lineChart("Nodes per version (hourly, last 30 days)", top.map(([label, points], i) => ({ label, cls: `c${i + 1}`, points })), width),
      );
      stalls.replaceChildren(...fin.stalls.map((st) => h("tr", {},
        h("td", {}, dateTime(st.started_at)), h("td", {}, st.ended_at ? dateTime(st.ended_at) : "ongoing"),
        h("td", { class: "num" }, `${(st.duration_ms / 1000).toFixed(1)} s`), h("td", { class: "num" }, num(st.finalized_height)),
        h("td", { class: "num" }, `${num(st.best_height_at_start)} → ${num(st.best_height_at_end)}`),
        h("td", { class: "num" }, num(st.nodes.length)),
        h("td", {}, st.voters.length ? st.voters.map((v) => `${v.voter} (${v.prevotes}/${v.precommits})`).join(", ") : "none reported"))));
      if (fin.stalls.length === 0) stalls.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "empty" }, `No stall in this window (finality standing still over ${fin.stall_threshold_s} s while blocks are made).`)));
      versions.replaceChildren(...ver.versions.map((v) => h("tr", {},
        h("td", {}, text(v.implementation)), h("td", { class: "mono" }, text(v.version)), h("td", {}, dateTime(v.first_seen)), h("td", {}, dateTime(v.last_seen)), h("td", { class: "num" }, num(v.peak_nodes)))));
      outdated.replaceChildren(...ver.outdated.map((n) => h("tr", {},
        h("td", {}, h("a", { href: nodeHref(n.peer_id), "data-link": true }, text(n.name || n.peer_id))), h("td", { class: "mono" }, n.version), h("td", { class: "mono" }, n.newest_version))));
      if (ver.outdated.length === 0) outdated.replaceChildren(h("tr", {}, h("td", { colspan: 3, class: "empty" }, "Every connected node runs its implementation's newest version.")));
      const a = hw.authorities;
      reference.replaceChildren(
        `Authorities below Substrate's reference hardware: ${a.below_reference} of ${a.benchmarked} benchmarked`,
        a.share_below === null ? "" : ` (${(a.share_below * 100).toFixed(0)} %)`, ". Minimums (MiB/s) from ",
        h("a", { href: hw.reference.source }, "polkadot-sdk reference_hardware.json"), ".");
      const mib = (v) => (v === null || v === undefined ? "—" : num(v));
      hardware.replaceChildren(...hw.nodes.map((n) => h("tr", { class: n.below_reference.length ? "behind" : "" },
        h("td", {}, h("a", { href: nodeHref(n.peer_id), "data-link": true, class: "mono" }, n.peer_id)), h("td", {}, n.authority ? "yes" : "no"),
        h("td", {}, text(n.cpu)), h("td", { class: "num" }, num(n.core_count)), h("td", { class: "num" }, n.memory ? `${(n.memory / 2 ** 30).toFixed(0)} GiB` : "—"),
        h("td", { class: "num" }, mib(n.cpu_hashrate_score)), h("td", { class: "num" }, mib(n.memory_memcpy_score)),
        h("td", { class: "num" }, mib(n.disk_sequential_write_score)), h("td", { class: "num" }, mib(n.disk_random_write_score)),
        h("td", {}, n.below_reference.length ? n.below_reference.join(", ") : "—"))));
      if (hw.nodes.length === 0) hardware.replaceChildren(h("tr", {}, h("td", { colspan: 10, class: "empty" }, "No hardware reported in the last 30 days.")));
    },
  };
  return view;
}

function benchmarksView(root) {
  const hosts = h("tbody", {});
  const benches = h("tbody", {});
  root.append(
    h("h1", {}, "Benchmarks"),
    h("section", {}, h("h2", {}, "Benchmarks"), h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ...["Id", "Description", "Start", "End", "Host system"].map((c) => h("th", { scope: "col" }, c)))), benches))),
    h("section", {}, h("h2", {}, "Host systems"), h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ...["Id", "Description", "OS", "CPUs", "Clock (MHz)", "RAM (MB)", "Disk"].map((c) => h("th", { scope: "col" }, c)))), hosts))),
  );
  return {
    title: "Benchmarks",
    async refresh() {
      const [h1, b1] = await Promise.all([api("/host_systems"), api("/benchmarks")]);
      hosts.replaceChildren(...h1.map((x) => h("tr", {}, h("td", { class: "num" }, x.id), h("td", {}, x.description), h("td", {}, x.os),
        h("td", { class: "num" }, x.cpu_qty), h("td", { class: "num" }, x.cpu_clock), h("td", { class: "num" }, num(x.ram_mb)), h("td", {}, x.disk_info))));
      if (h1.length === 0) hosts.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "None yet: POST /host_systems adds one.")));
      benches.replaceChildren(...b1.map((b) => h("tr", {},
        h("td", { class: "num" }, h("a", { href: `${BASE}/benchmarks/${b.id}`, "data-link": true }, b.id)),
        h("td", {}, h("a", { href: `${BASE}/benchmarks/${b.id}`, "data-link": true }, text(b.description))),
        h("td", {}, dateTime(b.ts_start)), h("td", {}, dateTime(b.ts_end)), h("td", { class: "num" }, b.host_system_id))));
      if (b1.length === 0) benches.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "None yet: POST /benchmarks adds one.")));
    },
  };
}

function benchmarkView(root, id) {
  const head = h("section", {});
  const nodes = h("tbody", {});
  const kinds = h("tbody", {});
  root.append(
    h("p", { class: "crumbs" }, h("a", { href: `${BASE}/benchmarks`, "data-link": true }, "Benchmarks"), ` / ${id}`),
    head,
    h("div", { class: "two" },
      h("section", {}, h("h2", {}, "Nodes in the window"), h("div", { class: "scroll" }, h("table", {},
        h("thead", {}, h("tr", {}, ...["Name", "Chain", "Version", "Connected", "Ended"].map((c) => h("th", { scope: "col" }, c)))), nodes))),
      h("section", {}, h("h2", {}, "Messages in the window"), h("table", { class: "kinds" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Kind"), h("th", { scope: "col", class: "num" }, "Count"))), kinds)),
    ),
  );
  return {
    title: `Benchmark ${id}`,
    async refresh() {
      const [b, n, k] = await Promise.all([
        api(`/benchmarks/${id}`), api(`/benchmarks/${id}/nodes`), api(`/benchmarks/${id}/log_stats`),
      ]);
      head.replaceChildren(
        h("h1", {}, `Benchmark ${b.id}: ${text(b.description)}`),
        h("p", { class: "muted" }, `${dateTime(b.ts_start)} – ${dateTime(b.ts_end)} · host system ${b.host_system_id}`),
        h("details", {}, h("summary", {}, "Specs"), h("pre", {}, JSON.stringify({ chain_spec: b.chain_spec, benchmark_spec: b.benchmark_spec }, null, 2))),
      );
      nodes.replaceChildren(...n.map((r) => h("tr", {},
        h("td", {}, r.peer_id ? h("a", { href: nodeHref(r.peer_id), "data-link": true }, text(r.name)) : text(r.name)),
        h("td", {}, text(r.chain)), h("td", {}, text(r.version)), h("td", {}, dateTime(r.created_at)), h("td", {}, r.ended_at ? dateTime(r.ended_at) : "open"))));
      kinds.replaceChildren(...k.map((r) => h("tr", {}, h("td", { class: "mono" }, text(r.log_type)), h("td", { class: "num" }, num(r.qty)))));
    },
  };
}

// ---- routing and the refresh loop ---------------------------------------------------------

let current = null;
let timer = null;

function route(path) {
  const rest = path.startsWith(BASE) ? path.slice(BASE.length) : path;
  const parts = rest.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "node" && parts[1]) return ["fleet", (root) => nodeView(root, parts[1])];
  if (parts[0] === "chains" && parts[1]) return ["chains", (root) => chainView(root, parts[1])];
  if (parts[0] === "chains") return ["chains", chainsView];
  if (parts[0] === "benchmarks" && parts[1]) return ["benchmarks", (root) => benchmarkView(root, Number(parts[1]) || 0)];
  if (parts[0] === "benchmarks") return ["benchmarks", benchmarksView];
  return ["fleet", fleetView];
}

function report(e) {
  if (e instanceof Unreachable) {
    status.down(e.message);
  } else {
    const root = document.getElementById("view");
    root.querySelector(".error")?.remove();
    root.prepend(h("p", { class: "error", role: "alert" }, e.message));
  }
}

async function tick(view) {
  try {
    await view.refresh();
    if (view !== current) return;
    document.getElementById("view").querySelector(".error")?.remove();
    document.title = `${view.title} · tetcore-analytics`;
    status.ok();
  } catch (e) {
    if (view === current) report(e);
  }
}

function show(path, focus) {
  const [section, make] = route(path);
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const root = document.getElementById("view");
  root.replaceChildren();
  current = make(root);
  if (focus) root.focus({ preventScroll: true });
  clearTimeout(timer);
  const view = current;
  const loop = async () => {
    await tick(view);
    if (view === current) timer = setTimeout(loop, REFRESH_MS);
  };
  loop();
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  if (a.pathname !== location.pathname) history.pushState(null, "", a.pathname);
  show(a.pathname, true);
  window.scrollTo(0, 0);
});
window.addEventListener("popstate", () => show(location.pathname, true));
let resized = null;
window.addEventListener("resize", () => {
  clearTimeout(resized);
  resized = setTimeout(() => current && tick(current), 250);
});

status.el = document.getElementById("status");
show(location.pathname, false);
