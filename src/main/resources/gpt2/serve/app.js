// gpt2 serve's page: the runs (from the server's event stream), their curves (uPlot), samples,
// checkpoints and a generation panel (POST /v1/completions, streamed). No other script, no CDN.
"use strict";

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const MAX_SELECTED = 8;

const state = {
  runs: new Map(),      // name -> summary
  metrics: new Map(),   // name -> {next, step:[], tokens:[], loss:[], lr:[], norm:[], tok_s:[], mfu:[], ms:[], val:{step:[], tokens:[], val_loss:[]}}
  selected: new Set(),
  userChoseSelection: false,
  focus: null,
  x: "step",
  charts: new Map(),    // element id -> {plot, key}
  loading: new Map(),   // name -> promise of the metrics fetch in flight
};

function $(sel) { return document.querySelector(sel); }
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
function runUrl(name, what, query) {
  return "/api/runs/" + encodeURIComponent(name) + "/" + what + (query ? "?" + query : "");
}
async function getJson(url) {
  const r = await fetch(url, {credentials: "same-origin"});
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ? body.error.message : r.status + " " + r.statusText);
  return body;
}
function fmt(x, digits) { return x === undefined || x === null || Number.isNaN(x) ? "-" : Number(x).toFixed(digits); }
function fmtInt(x) { return x === undefined || x === null ? "-" : Math.round(x).toLocaleString("en-US"); }
function duration(s) {
  if (!Number.isFinite(s) || s < 0) return "-";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${String(m).padStart(2, "0")}m` : `${m}m ${String(Math.round(s % 60)).padStart(2, "0")}s`;
}
const colors = new Map(); // a run keeps the color it was first drawn with
function color(name) {
  if (!colors.has(name)) colors.set(name, COLORS[colors.size % COLORS.length]);
  return colors.get(name);
}

// ---------------------------------------------------------------- metrics

function emptyMetrics() {
  return {next: 0, step: [], tokens: [], loss: [], lr: [], norm: [], tok_s: [], mfu: [], ms: [],
          val: {step: [], tokens: [], val_loss: []}, core: {step: [], tokens: [], core: []}, unreadable: 0};
}

/** Reads a run's new metrics lines (from the byte offset it got last), appending them. */
function loadMetrics(name) {
  if (state.loading.has(name)) return state.loading.get(name);
  const p = (async () => {
    let m = state.metrics.get(name) || emptyMetrics();
    for (;;) {
      const r = await getJson(runUrl(name, "metrics", "from=" + m.next));
      if (r.reset) m = emptyMetrics(); // the file was rewritten (a resumed run): read it again from the start
      let perStep = 0;
      for (const rec of r.records) {
        if (rec.loss !== undefined) {
          m.step.push(rec.step);
          m.tokens.push(rec.tokens !== undefined ? rec.tokens : null);
          if (rec.tokens && rec.step) perStep = rec.tokens / rec.step;
          m.loss.push(rec.loss);
          m.lr.push(rec.lr !== undefined ? rec.lr : null);
          m.norm.push(rec.norm !== undefined ? rec.norm : null);
          m.tok_s.push(rec.tok_s !== undefined ? rec.tok_s : null);
          m.mfu.push(rec.mfu !== undefined ? rec.mfu : null);
          m.ms.push(rec.ms !== undefined ? rec.ms : null);
        }
        if (rec.core !== undefined) {
          m.core.step.push(rec.step);
          m.core.core.push(rec.core);
        }
        if (rec.val_loss !== undefined) {
          m.val.step.push(rec.step);
          m.val.tokens.push(null);
          m.val.val_loss.push(rec.val_loss);
        }
      }
      // validations carry no token count: the steps' tokens per step give it
      const per = m.step.length ? (m.tokens[m.tokens.length - 1] || 0) / m.step[m.step.length - 1] : perStep;
      m.val.tokens = m.val.step.map(s => s * per);
      m.core.tokens = m.core.step.map(s => s * per);
      m.unreadable = r.unreadable;
      m.next = r.next;
      state.metrics.set(name, m);
      if (r.records.length < 20000) break; // read in pages; the last one is short
    }
    return m;
  })().finally(() => state.loading.delete(name));
  state.loading.set(name, p);
  return p;
}

// ---------------------------------------------------------------- charts

function series(m, field) {
  if (!m) return null;
  if (field === "val_loss" || field === "core") {
    const part = field === "core" ? m.core : m.val;
    return [state.x === "step" ? part.step : part.tokens, part[field]];
  }
  const xs = state.x === "step" ? m.step : m.tokens;
  return [xs, m[field]];
}

/** Sorted by x, with the points that have no x or no value left out (uPlot.join wants ascending x). */
function clean([xs, ys]) {
  const pts = [];
  for (let i = 0; i < xs.length; i++) if (xs[i] !== null && ys[i] !== null && ys[i] !== undefined) pts.push([xs[i], ys[i]]);
  pts.sort((a, b) => a[0] - b[0]);
  const outX = [], outY = [];
  for (const [x, y] of pts) {
    if (outX.length && outX[outX.length - 1] === x) { outY[outY.length - 1] = y; continue; } // a resumed step: the last wins
    outX.push(x); outY.push(y);
  }
  return [outX, outY];
}

function drawCharts() {
  const names = [...state.selected].filter(n => state.metrics.has(n));
  for (const div of document.querySelectorAll(".chart")) {
    const field = div.dataset.field;
    const tables = [], labels = [];
    let points = 0;
    for (const n of names) {
      const s = series(state.metrics.get(n), field);
      const t = s ? clean(s) : [[], []];
      if (t[0].length === 0) continue;
      tables.push(t);
      labels.push(n);
      points += t[0].length;
    }
    div.dataset.points = String(points);
    const key = field + "|" + state.x + "|" + labels.join(",");
    let c = state.charts.get(div.id);
    if (tables.length === 0) {
      if (c) { c.plot.destroy(); state.charts.delete(div.id); }
      div.replaceChildren(el("div", {class: "empty"}, div.dataset.title + ": no points yet"
        + (field === "mfu" ? " (runs on a GPU log it)" : field === "core" ? " (train with --eval_every N)" : "")));
      continue;
    }
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    if (c && c.key === key) { c.plot.setData(data); continue; }
    if (c) c.plot.destroy();
    div.replaceChildren();
    const opts = {
      title: div.dataset.title,
      width: Math.max(320, div.clientWidth || 420),
      height: 220,
      scales: {x: {time: false}},
      legend: {live: true},
      series: [{label: state.x}].concat(labels.map(n => ({
        label: n, stroke: color(n), width: 1.5, spanGaps: true, points: {show: false},
        value: (u, v) => v === null || v === undefined ? "-" : (Math.abs(v) >= 1000 ? fmtInt(v) : Number(v).toPrecision(4)),
      }))),
      axes: [{values: (u, vals) => vals.map(v => state.x === "tokens" ? (v >= 1e6 ? (v / 1e6) + "M" : v) : v)},
             {size: 60, values: (u, vals) => vals.map(v => v === 0 ? "0" : Math.abs(v) < 0.01 ? v.toExponential(1)
               : Math.abs(v) >= 1000 ? fmtInt(v) : +v.toPrecision(4))}],
    };
    state.charts.set(div.id, {plot: new uPlot(opts, data, div), key});
  }
}

async function compare() {
  // runs with validation losses only: the comparison is tokens to reach the first one's final val loss
  const names = [...state.selected].filter(n => state.runs.has(n) && state.runs.get(n).val_loss !== undefined);
  const pre = $("#compare");
  if (names.length < 2) { pre.hidden = true; return; }
  try {
    const r = await getJson("/api/compare?runs=" + names.map(encodeURIComponent).join(","));
    pre.textContent = (r.lines || []).join("\n") + (r.table ? "\n\n" + r.table : "");
    pre.hidden = !pre.textContent.trim();
  } catch (e) {
    pre.textContent = "comparison: " + e.message;
    pre.hidden = false;
  }
}

// ---------------------------------------------------------------- the runs

function eta(summary, m) {
  if (summary.state !== "running" || !m || m.ms.length < 2 || !(summary.num_iterations > 0)) return "-";
  const recent = m.ms.slice(-20).filter(x => x !== null).sort((a, b) => a - b);
  const median = recent[Math.floor(recent.length / 2)];
  return duration(median * (summary.num_iterations - summary.step) / 1000);
}

function renderRuns() {
  const body = $("#runs tbody");
  body.replaceChildren();
  $("#runs-empty").hidden = state.runs.size > 0;
  const warnings = [];
  for (const [name, s] of state.runs) {
    const m = state.metrics.get(name);
    const check = el("input", {type: "checkbox", checked: state.selected.has(name)});
    check.addEventListener("change", () => {
      state.userChoseSelection = true;
      if (check.checked) state.selected.add(name); else state.selected.delete(name);
      refreshSelected();
    });
    const link = el("span", {class: "run-name"}, name);
    link.addEventListener("click", () => setFocus(name));
    const steps = s.num_iterations > 0 ? `${s.step}/${s.num_iterations}` : String(s.step);
    const row = el("tr", {"data-run": name, class: name === state.focus ? "focus" : ""},
      el("td", {}, check), el("td", {}, el("span", {class: "swatch", style: "background:" + color(name)}), link),
      el("td", {}, s.model || "-"), el("td", {class: "state-" + s.state}, s.state),
      el("td", {class: "num"}, steps), el("td", {class: "num"}, fmt(s.loss, 4)), el("td", {class: "num"}, fmt(s.val_loss, 4)),
      el("td", {class: "num"}, fmtInt(s.tok_s)), el("td", {class: "num"}, eta(s, m)),
      el("td", {class: "num"}, String((s.checkpoints || []).length)));
    body.append(row);
    if (s.error) warnings.push(`${name}: failed: ${s.error}`);
    if (s.problem) warnings.push(`${name}: ${s.problem}`);
    if (s.unreadable_lines) warnings.push(`${name}: ${s.unreadable_lines} line(s) of metrics.jsonl unreadable (left out)`);
  }
  $("#warnings").replaceChildren(...warnings.map(w => el("p", {class: "warning"}, w)));
}

async function refreshSelected() {
  await Promise.all([...state.selected].map(n => loadMetrics(n).catch(e => console.warn(n, e))));
  drawCharts();
  renderRuns();
  compare();
}

async function setFocus(name) {
  state.focus = name;
  $("#focus-name").textContent = name;
  renderRuns();
  const s = state.runs.get(name);
  const ckBody = $("#checkpoints tbody");
  ckBody.replaceChildren(...(s ? s.checkpoints : []).map(c => el("tr", {},
    el("td", {}, c.name), el("td", {class: "num"}, c.step), el("td", {class: "num"}, fmt(c.bytes / 1e6, 1)),
    el("td", {class: "num"}, c.hellaswag && c.hellaswag.acc_norm !== undefined ? fmt(c.hellaswag.acc_norm, 4) : "-"),
    el("td", {class: "num"}, c.core !== undefined ? fmt(c.core, 4) : "-"))));
  $("#flags").textContent = s && s.args ? Object.entries(s.args).filter(([k, v]) => v !== null && v !== "")
    .map(([k, v]) => `--${k} ${v}`).join("\n") : "(not recorded)";
  try {
    const samples = await getJson(runUrl(name, "samples"));
    $("#samples").replaceChildren(...samples.slice().reverse().map(x =>
      el("div", {class: "sample"}, el("b", {}, `step ${x.step}`), "\n" + (x.text || ""))));
    if (!samples.length) $("#samples").replaceChildren(el("p", {class: "note"}, "none yet (train with --sample_every N)"));
  } catch (e) {
    $("#samples").replaceChildren(el("p", {class: "warning"}, "samples: " + e.message));
  }
}

/** A new list of runs from the server: new runs appear, changed ones are read again from where they were. */
async function onRuns(list) {
  const before = new Map(state.runs);
  state.runs = new Map(list.map(s => [s.name, s]));
  for (const n of [...state.selected]) if (!state.runs.has(n)) state.selected.delete(n);
  for (const n of [...state.metrics.keys()]) if (!state.runs.has(n)) state.metrics.delete(n);
  if (!state.userChoseSelection) {
    for (const n of state.runs.keys()) if (state.selected.size < MAX_SELECTED) state.selected.add(n);
  }
  const changed = [...state.selected].filter(n => !before.has(n) || before.get(n).signature !== state.runs.get(n).signature
    || !state.metrics.has(n));
  renderRuns();
  await Promise.all(changed.map(n => loadMetrics(n).catch(e => console.warn(n, e))));
  drawCharts();
  renderRuns();
  if (changed.length) compare();
  if (state.focus && state.runs.has(state.focus) && changed.includes(state.focus)) setFocus(state.focus);
  if (!state.focus && state.runs.size) setFocus([...state.runs.keys()][0]);
  refreshModels();
}

function watch() {
  const live = $("#live");
  const es = new EventSource("/api/events");
  es.addEventListener("runs", e => { live.textContent = "live"; live.className = "badge live"; onRuns(JSON.parse(e.data)); });
  es.onerror = () => { live.textContent = "reconnecting"; live.className = "badge down"; };
}

// ---------------------------------------------------------------- generation

async function refreshModels() {
  const sel = $("#gen-model");
  const keep = sel.value;
  try {
    const r = await getJson("/v1/models");
    const ids = r.data.map(m => m.id);
    if (ids.join("\n") === [...sel.options].map(o => o.value).join("\n")) return;
    sel.replaceChildren(...ids.map(id => el("option", {value: id}, id)));
    if (ids.includes(keep)) sel.value = keep;
  } catch (e) {
    $("#gen-status").textContent = "models: " + e.message;
  }
}

async function generate(ev) {
  ev.preventDefault();
  const out = $("#gen-output"), status = $("#gen-status"), button = $("#gen-button");
  const model = $("#gen-model").value;
  if (!model) { status.textContent = "no checkpoint to generate from yet"; return; }
  out.textContent = $("#gen-prompt").value;
  button.disabled = true;
  status.textContent = "generating...";
  const started = performance.now();
  let pieces = 0;
  try {
    const r = await fetch("/v1/completions", {
      method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({model, prompt: $("#gen-prompt").value, stream: true,
        max_tokens: Number($("#gen-max").value), temperature: Number($("#gen-temperature").value),
        top_k: Number($("#gen-topk").value), top_p: Number($("#gen-topp").value)}),
    });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new Error(body.error ? body.error.message : r.status + " " + r.statusText);
    }
    const reader = r.body.getReader(), decoder = new TextDecoder();
    let buf = "", finish = null;
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const c = chunk.choices[0];
        if (c.text) { out.textContent += c.text; pieces++; }
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    const sec = (performance.now() - started) / 1000;
    status.textContent = `done (${finish || "?"}) in ${sec.toFixed(1)} s`;
    out.dataset.done = "1";
  } catch (e) {
    status.textContent = "error: " + e.message;
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- start

for (const r of document.querySelectorAll("input[name=x]")) {
  r.addEventListener("change", () => { state.x = r.value; drawCharts(); });
}
$("#gen-form").addEventListener("submit", generate);
getJson("/api/runs").then(r => { $("#root").textContent = r.root; }).catch(e => { $("#root").textContent = e.message; });
watch();
