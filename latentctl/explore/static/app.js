// latentctl explore: one page, no framework, no build step. Everything it shows comes from the
// token-guarded API of the server that served it; text from the server is set with textContent.
"use strict";

const TOKEN = document.querySelector('meta[name="latentctl-token"]').content;
// Identifies this page to the server, whose render slots keep only this page's newest request.
const CLIENT = Math.random().toString(36).slice(2) + Date.now().toString(36);
const $ = (id) => document.getElementById(id);

const state = {
  info: null, psi: 1, start: 0, count: 24,
  pos: [], neg: [],            // seeds in each pile, in the order picked
  base: { seed: 0 }, baseLabel: "seed 0",
  sliders: [],                 // [{name, weight}]
  interpA: null, interpB: null, mode: "steer",
  directions: [],              // names of direction entries in the store
  lastPng: null,               // the last full-size image shown (never a preview)
};

function status(text) { $("status").textContent = text || ""; }

// Names in the order people count: sefa-2 before sefa-10 (a plain sort gives sefa-1, sefa-10, sefa-2).
const naturally = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
function byName(a, b) { return naturally.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0); }

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

async function api(path, body) {
  const opts = { headers: { "X-Latentctl-Token": TOKEN, "X-Latentctl-Client": CLIENT } };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { data = { error: `HTTP ${r.status}` }; }
  if (r.status === 409 && data.error && data.error.startsWith("superseded")) return null;
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

// At most one request per view in flight; while it runs, only the newest next request is kept.
function latestOnly(fn) {
  let running = false, pending = null;
  return async function run(arg) {
    if (running) { pending = [arg]; return; }
    running = true;
    try { await fn(arg); } catch (e) { status(e.message); }
    running = false;
    if (pending) { const next = pending; pending = null; run(...next); }
  };
}

// ---- browse -------------------------------------------------------------------------------------

// The grid says "drawing the first samples…" (index.html) until its first page arrives: on a big
// model on a CPU that takes seconds. Later pages keep the old tiles and say so in the status.
const loadTiles = latestOnly(async () => {
  const grid = $("grid");
  if (!grid.querySelector(".loading")) status("drawing samples…");
  let res;
  try {
    res = await api("/api/tiles", { start: state.start, count: state.count, psi: state.psi });
  } catch (e) {
    const waiting = grid.querySelector(".loading");
    if (waiting) waiting.textContent = "no samples: see the message at the top right";
    throw e;
  }
  if (!res) return;
  grid.replaceChildren(...res.tiles.map(tileElement));
  $("browse-cmd").textContent = res.command;
  status("");
});

function tileElement(t) {
  const img = el("img", { src: t.png, alt: `sample of seed ${t.seed}`, title: "steer this sample", onclick: () => steerFrom({ seed: t.seed }, `seed ${t.seed}`) });
  const has = el("button", { className: "has", textContent: "has it", title: "put into the 'has it' pile", onclick: () => togglePile(t.seed, "pos") });
  const not = el("button", { className: "not", textContent: "doesn't", title: "put into the 'doesn't' pile", onclick: () => togglePile(t.seed, "neg") });
  const fig = el("figure", { className: "tile", dataset: { seed: t.seed } }, img,
    el("figcaption", {}, el("span", { className: "seed", textContent: `seed ${t.seed}` }), has, not));
  markTile(fig);
  return fig;
}

function markTile(fig) {
  const seed = Number(fig.dataset.seed);
  const inPos = state.pos.includes(seed), inNeg = state.neg.includes(seed);
  fig.classList.toggle("in-pos", inPos);
  fig.classList.toggle("in-neg", inNeg);
  fig.querySelector("button.has").setAttribute("aria-pressed", inPos);
  fig.querySelector("button.not").setAttribute("aria-pressed", inNeg);
}

// ---- piles --------------------------------------------------------------------------------------

function togglePile(seed, side) {
  const other = side === "pos" ? "neg" : "pos";
  state[other] = state[other].filter((s) => s !== seed);
  state[side] = state[side].includes(seed) ? state[side].filter((s) => s !== seed) : [...state[side], seed];
  renderPiles();
}

function renderPiles() {
  for (const side of ["pos", "neg"]) {
    $(`n-${side}`).textContent = state[side].length;
    $(`pile-${side}`).replaceChildren(...state[side].map((s) =>
      el("button", { textContent: s, title: "take out of the pile", onclick: () => togglePile(s, side) })));
  }
  document.querySelectorAll(".tile").forEach(markTile);
  const min = state.info ? state.info.limits.min_picks : 10;
  const needPos = Math.max(min - state.pos.length, 0), needNeg = Math.max(min - state.neg.length, 0);
  $("need").textContent = needPos || needNeg
    ? `pick ${needPos} more for 'has it' and ${needNeg} more for 'doesn't' (at least ${min} each)`
    : `enough picks (${state.pos.length} vs ${state.neg.length})`;
  checkPiles();
}

const checkPiles = latestOnly(async () => {
  if (!state.pos.length || !state.neg.length) { $("check").textContent = ""; return; }
  const res = await api("/api/check", { pos: state.pos, neg: state.neg, psi: state.psi, method: $("method").value });
  if (!res) return;
  const loo = res.loo_accuracy === null ? "needs 2 per pile" : `${Math.round(res.loo_accuracy * 100)}%`;
  const warned = (res.warnings || []).length ? `\nwarning: ${res.warnings.join("\nwarning: ")}` : "";
  const vs = res.held_out ? `\n${res.held_out}` : "";
  $("check").textContent = `held-out check (leave-one-out accuracy): ${loo}; on the picks: ${res.summary}${vs}${warned}`;
});

async function makeDirection() {
  const name = $("dir-name").value.trim();
  const ortho = [...$("ortho").selectedOptions].map((o) => o.value);
  try {
    const res = await api("/api/direction", {
      pos: state.pos, neg: state.neg, psi: state.psi, name, method: $("method").value,
      unit: $("unit").checked, orthogonal_to: ortho, force: $("dir-force").checked,
    });
    const loo = res.loo_accuracy === null ? "n/a" : `${Math.round(res.loo_accuracy * 100)}%`;
    $("dir-report").textContent = `saved '${res.name}' (length ${res.norm.toFixed(3)}), piles '${res.pos_name}' and '${res.neg_name}'\n`
      + `${res.report}\nheld-out: ${res.held_out || loo}`
      + ((res.warnings || []).length ? `\nwarning: ${res.warnings.join("\nwarning: ")}` : "")
      + (res.overlaps || []).map((o) => o.hint ? `\nwarning: ${o.hint}`
        : `\noverlap with '${o.name}': cos ${o.cosine >= 0 ? "+" : ""}${o.cosine.toFixed(2)}`).join("")
      + `\n\nreproduce:\n${res.commands.join("\n")}`;
    status("");
    await loadEntries();
    addSlider(res.name, 1);
  } catch (e) { $("dir-report").textContent = `Error: ${e.message}`; }
}

// ---- steer --------------------------------------------------------------------------------------

function steerFrom(base, label) {
  state.base = base;
  state.baseLabel = label;
  state.mode = "steer";
  $("base-label").textContent = label;
  $("strip").replaceChildren();
  steer();
}

function currentView() {
  if (state.mode === "interp" && state.interpA && state.interpB) {
    return { kind: "interp", a: state.interpA.base, b: state.interpB.base, steps: 11, index: Number($("interp-t").value), psi: state.psi };
  }
  return { kind: "steer", base: state.base, psi: state.psi, directions: state.sliders.map((s) => ({ name: s.name, weight: s.weight })) };
}

// Whether a moving slider asks for a preview: only where the model has one (info.preview_size),
// since elsewhere the release would only render the same full image a second time.
function previews() { return Boolean(state.info && state.info.preview_size); }

// Replies are numbered by request: one older than the image on screen never replaces it, so a
// preview that arrives late cannot cover the full image asked for after it.
let steerAsked = 0, steerShown = 0;

// steer() draws the full image; steer({ preview: true }) the preview while a slider moves (the
// server answers full size when the model has none, and says which it sent).
const steer = latestOnly(async (opts) => {
  const preview = Boolean(opts && opts.preview) && previews();
  const seq = ++steerAsked;
  const res = await api("/api/steer", preview ? { ...currentView(), preview: true } : currentView());
  if (!res || seq < steerShown) return;
  steerShown = seq;
  const img = $("steer-img");
  img.src = res.png;  // a preview is smaller: the CSS box scales it to the full image's size
  img.classList.toggle("is-preview", Boolean(res.preview));
  img.title = res.preview ? `preview at ${res.size} px; the full image follows when the slider is released` : "";
  if (!res.preview) state.lastPng = res.png;
  $("steer-cmd").textContent = res.command || "(add a direction: `apply --mean` needs one)";
  $("steer-warning").textContent = res.warning || "";
  status("");
});

function addSlider(name, weight = 0) {
  if (!name) return;
  if (state.sliders.some((s) => s.name === name)) return;
  const max = state.info ? Math.min(state.info.limits.weight, 5) : 5;
  const s = { name, weight };
  state.sliders.push(s);
  const value = el("output", { textContent: weight });
  const range = el("input", { type: "range", min: -max, max, step: 0.05, value: weight, className: "dir-slider", "aria-label": `strength of ${name}` });
  range.dataset.name = name;
  range.addEventListener("input", () => {
    s.weight = Number(range.value);
    value.textContent = s.weight;
    state.mode = "steer";
    steer({ preview: previews() });
  });
  // Released: the full image replaces the preview shown while it moved.
  range.addEventListener("change", () => { if (previews()) steer(); });
  const row = el("div", { className: "slider" }, el("span", { textContent: name }), range, value,
    el("button", { textContent: "×", title: "remove this slider", onclick: () => {
      state.sliders = state.sliders.filter((x) => x !== s); row.remove(); steer();
    } }));
  $("sliders").append(row);
  steer();
}

async function showStrip() {
  try {
    const res = await api("/api/strip", { base: state.base, psi: state.psi, directions: state.sliders.map((s) => ({ name: s.name, weight: s.weight || 1 })), scales: [-2, -1, 0, 1, 2] });
    $("strip").replaceChildren(...res.tiles.map((t) => el("figure", {}, el("img", { src: t.png, alt: `strength ${t.scale}` }), el("figcaption", { textContent: `${t.scale > 0 ? "+" : ""}${t.scale}` }))));
    $("steer-cmd").textContent = res.command;
  } catch (e) { status(e.message); }
}

function setInterp(which) {
  const pick = { base: state.base, label: state.baseLabel };
  if (which === "a") state.interpA = pick; else state.interpB = pick;
  $(`interp-${which}`).textContent = pick.label;
  $("interp-t").disabled = !(state.interpA && state.interpB);
}

async function saveLatent() {
  try {
    const res = await api("/api/save", { name: $("save-name").value.trim(), force: $("save-force").checked, view: currentView() });
    status(`saved '${res.name}'; ${res.command}`);
    loadEntries();
  } catch (e) { status(e.message); }
}

// ---- store --------------------------------------------------------------------------------------

async function loadEntries() {
  const res = await api("/api/entries");
  res.entries.sort((a, b) => byName(a.name, b.name));
  state.directions = res.entries.filter((e) => e.kind === "direction" && e.usable).map((e) => e.name);
  $("entries").replaceChildren(...res.entries.map((e) => el("li", { dataset: { name: e.name } },
    el("span", { textContent: e.name }),
    el("span", { className: "kind", textContent: e.error ? "unreadable" : `${e.kind}, ${e.count} × ${e.latent_dim}` }),
    e.usable ? el("button", { textContent: "load", onclick: () => loadEntry(e.name) }) : "")));
  for (const sel of [$("add-dir"), $("ortho")]) {
    const chosen = new Set([...sel.selectedOptions].map((o) => o.value));
    sel.replaceChildren(...state.directions.map((n) => el("option", { value: n, textContent: n, selected: chosen.has(n) })));
  }
  // Tall enough to pick from without scrolling a two-row box; the CSS lets it be dragged taller.
  $("ortho").size = Math.min(10, Math.max(5, state.directions.length));
}

async function loadEntry(name) {
  try {
    const e = await api(`/api/entries/${encodeURIComponent(name)}`);
    const view = $("entry-view");
    const head = el("p", {}, el("strong", { textContent: e.name }), ` ${e.kind}, ${e.count} row(s)` + (e.warning ? ` — ${e.warning}` : ""));
    if (e.kind === "direction") {
      view.replaceChildren(head, el("button", { textContent: "add as slider", onclick: () => addSlider(e.name, 1) }));
      return;
    }
    const buttons = [el("button", { textContent: "steer the mean", onclick: () => steerFrom({ entry: e.name, mean: true }, `mean of ${e.name}`) })];
    if (e.seeds) {
      buttons.push(el("button", { textContent: "seeds → has it", onclick: () => { e.seeds.forEach((s) => state.pos.includes(s) || togglePile(s, "pos")); } }));
      buttons.push(el("button", { textContent: "seeds → doesn't", onclick: () => { e.seeds.forEach((s) => state.neg.includes(s) || togglePile(s, "neg")); } }));
    }
    const preview = el("div", { className: "preview" }, ...e.preview.map((p) => el("figure", {},
      el("img", { src: p.png, alt: `${e.name} row ${p.row}`, title: "steer this latent", onclick: () => steerFrom({ entry: e.name, row: p.row }, `${e.name}@${p.row}`) }),
      el("figcaption", { textContent: e.seeds ? `@${p.row} seed ${e.seeds[p.row]}` : `@${p.row}` }))));
    view.replaceChildren(head, el("div", { className: "controls" }, ...buttons), preview);
  } catch (err) { status(err.message); }
}

// ---- wiring -------------------------------------------------------------------------------------

function page(delta) {
  state.start = Math.max(0, state.start + delta * state.count);
  $("start").value = state.start;
  loadTiles();
}

async function init() {
  try {
    state.info = await api("/api/info");
  } catch (e) {
    status(e.message);
    $("model-info").textContent = "the model did not load";
    $("grid").replaceChildren();
    return;
  }
  const size = state.info.image_size;
  const previewNote = previews() ? ` (sliders preview at ${state.info.preview_size}px while they move)` : "";
  // Whole-pixel upscaling to about 128 px keeps tiles crisp and readable at any model size.
  const scale = Math.max(1, Math.round(128 / size));
  document.documentElement.style.setProperty("--tile", `${size * scale}px`);
  $("model-info").textContent = `${state.info.model} — ${size}px${previewNote}, latent ${state.info.latent_dim}, model ${state.info.model_id}; store ${state.info.store}`;
  $("prev").onclick = () => page(-1);
  $("next").onclick = () => page(1);
  $("start").onchange = () => { state.start = Math.max(0, Math.floor(Number($("start").value) || 0)); loadTiles(); };
  $("count").onchange = () => { state.count = Number($("count").value); loadTiles(); };
  $("psi").oninput = () => { state.psi = Number($("psi").value); $("psi-value").textContent = state.psi; loadTiles(); steer({ preview: previews() }); checkPiles(); };
  $("psi").onchange = () => { if (previews()) steer(); };
  $("method").onchange = () => checkPiles();
  $("make-dir").onclick = makeDirection;
  $("clear-piles").onclick = () => { state.pos = []; state.neg = []; renderPiles(); };
  $("add-slider").onclick = () => addSlider($("add-dir").value, 0);
  $("show-strip").onclick = showStrip;
  $("set-a").onclick = () => setInterp("a");
  $("set-b").onclick = () => setInterp("b");
  $("interp-t").oninput = () => { state.mode = "interp"; $("interp-value").textContent = `t = ${Number($("interp-t").value) / 10}`; steer({ preview: previews() }); };
  $("interp-t").onchange = () => { if (previews()) steer(); };
  $("save-btn").onclick = saveLatent;
  $("refresh-store").onclick = loadEntries;
  renderPiles();
  await Promise.all([loadTiles(), loadEntries(), steer()]);
}

init();
