// The studio's page (studio.html); a file of its own, as the service's Content-Security-Policy
// runs no inline script.
"use strict";
const $ = (id) => document.getElementById(id);
// [ModelInfo.controls key, input id] for the generate form.
const CONTROLS = [["n", "n"], ["bars", "bars"], ["steps", "steps"], ["temperature", "temperature"],
                  ["top_k", "top-k"], ["top_p", "top-p"], ["seed", "seed"], ["tempo", "tempo"]];
const BUTTONS = ["generate", "interpolate", "classify", "render", "recommend"];
let models = [];
const uploads = { primer: null, condition: null, "interp-a": null, "interp-b": null, "clf-file": null,
                  "render-file": null };
const CLEARABLE = ["primer", "condition"];  // optional uploads, with a button that removes them
let busy = 0;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    // A style through the CSSOM: the Content-Security-Policy refuses style attributes.
    if (k === "text") node.textContent = v;
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}
function showStatus(message, kind = "error") {
  $("status").dataset.kind = kind;
  $("status").textContent = message;
}
function setBusy(on, what) {
  busy += on ? 1 : -1;
  $("busy").hidden = busy === 0;
  if (on) $("busy-text").textContent = what;
  document.body.setAttribute("aria-busy", String(busy > 0));
  for (const id of BUTTONS) $(id).disabled = busy > 0;
}
// Long work runs as a background job (POST /api/jobs/...): its progress shows while it runs,
// Cancel stops it, and closing the page loses nothing (the job finishes on the service).
let currentJob = null;
async function inBackground(kind, body, what) {
  const task = await postJSON(`api/jobs/${kind}`, body);
  currentJob = task.url;
  $("job-progress").hidden = false; $("job-cancel").hidden = false;
  try {
    for (let status = task; ; status = await api(task.url)) {
      $("job-progress").value = status.progress;
      // The pieces are drawn; writing (and rendering) them is the rest of the job.
      $("busy-text").textContent = status.progress >= 1 ? "Writing the files…"
        : `${what} ${Math.round(100 * status.progress)}%`;
      if (status.status === "done") return status.result;
      if (status.status === "failed") throw new Error(status.error.error);
      if (status.status === "cancelled") throw Object.assign(new Error("Cancelled."), { cancelled: true });
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    currentJob = null;
    $("job-progress").hidden = true; $("job-cancel").hidden = true;
  }
}
$("job-cancel").addEventListener("click", () => { if (currentJob) api(currentJob, { method: "DELETE" }).catch(() => {}); });
// One action at a time: a busy indicator while it runs, the API's own message when it fails.
async function run(what, action) {
  setBusy(true, what);
  showStatus("", "info");
  try { await action(); } catch (e) { showStatus(e.message, e.cancelled ? "info" : "error"); }
  finally { setBusy(false); }
}
// The key lives in this tab only (sessionStorage), and goes in a header, never in a URL. File
// links in answers are signed by the service, so <audio> and downloads need no key.
function withKey(options) {
  const key = sessionStorage.getItem("cadenza-key");
  if (!key) return options;
  return { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${key}` } };
}
async function api(path, options = {}) {
  let res;
  try { res = await fetch(path, withKey(options)); } catch (e) {
    throw new Error(`Cannot reach the Cadenza service (${e.message}).`);
  }
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (res.status === 401) throw new Error(`${body && body.error ? body.error : "An API key is needed"}: paste your key in the API key field.`);
  if (!res.ok) throw new Error(body && body.error ? body.error : `${res.status} ${res.statusText}: ${text.slice(0, 200)}`);
  return body;
}
const postJSON = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify(body) });
function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}
// The page checks what its own inputs know (range, whole numbers, text in a number field)
// before asking: the service would refuse it anyway, in its words rather than the field's.
function checkNumbers(ids) {
  for (const id of ids) {
    const input = $(id);
    if (input.closest("[hidden]")) continue;
    const v = input.validity;
    if (v.badInput || v.rangeUnderflow || v.rangeOverflow || (input.step === "1" && v.stepMismatch)) {
      const label = document.querySelector(`label[for="${id}"]`).textContent;
      input.focus();
      throw new Error(`${label}: ${v.badInput ? "enter a number" : input.validationMessage}`);
    }
  }
}
// Left-out keys take the service's defaults; null is not a value every route takes.
const compact = (body) => Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null));
const byName = (name) => models.find((m) => m.name === name);
const generators = () => models.filter((m) => m.kind === "generator");
function fillSelect(select, options, emptyLabel) {
  select.replaceChildren();
  if (emptyLabel !== undefined) select.append(el("option", { value: "", text: emptyLabel }));
  for (const o of options) select.append(typeof o === "string" ? el("option", { value: o, text: o }) : o);
}

function applyGenerator() {
  const m = byName($("model").value);
  if (!m) return;
  for (const [key, id] of CONTROLS) {
    const c = m.controls[key];
    $(`field-${key}`).hidden = !c;
    if (!c) continue;
    $(id).min = c.min; $(id).max = c.max;
    $(id).value = c.default === null || c.default === undefined ? "" : c.default;
  }
  $("field-primer").hidden = !m.modes.includes("primer");
  // A track-conditional GAN writes the other tracks around a melody, and needs one.
  $("field-condition").hidden = !m.modes.includes("condition");
  // A style-conditional model writes in one of its styles (or none: as trained without one).
  $("field-style").hidden = !m.modes.includes("style");
  const styles = m.styles || [];
  fillSelect($("style"), [...styles, ...(styles.length > 1 ? [el("option", { value: MIX, text: "a mix…" })] : [])], "no style");
  $("style-mix").replaceChildren(...styles.map((name, i) => el("div", { class: "field" },
    el("label", { for: `style-w-${i}`, text: `${name} weight` }),
    el("input", { id: `style-w-${i}`, type: "number", min: "0", max: "100", step: "0.1", value: "1", "data-style": name }))));
  applyStyle();
  // A VAE moves its pieces along attribute vectors (MusicVAE): the same draws, shifted.
  const attributes = m.modes.includes("attribute") ? (m.attributes || []) : [];
  $("field-attribute").hidden = attributes.length === 0;
  fillSelect($("attribute"), attributes.map((a) => el("option", { value: a.name, text: `${a.name} (${a.unit})` })), "none");
  applyAttribute();
  $("model-info").textContent = `${m.family} · ${m.output} · ${m.modes.join(", ")}`;
  const pair = m.modes.includes("interpolate");
  $("interp-section").hidden = !pair && !m.modes.includes("latent_walk");
  $("interp-title").textContent = pair ? `Interpolate with ${m.name}` : `Latent walk with ${m.name}`;
  $("field-interp-a").hidden = !pair;
  $("field-interp-b").hidden = !pair;
  $("interp-temperature").placeholder = pair ? "greedy" : "model default";
  $("interp-note").textContent = pair ? "Upload two MIDI files; the model walks between the codes of their opening windows."
    : "This model walks between two random latents drawn from the seed.";
}

const MIX = "__mix__";  // the style select's "a mix…"
const mixInputs = () => [...$("style-mix").querySelectorAll("input")];
function applyStyle() { $("field-style-mix").hidden = $("field-style").hidden || $("style").value !== MIX; }
$("style").addEventListener("change", applyStyle);
function styleRequest() {
  if ($("style").value !== MIX) return $("style").value || null;
  checkNumbers(mixInputs().map((i) => i.id));
  const mix = Object.fromEntries(mixInputs().map((i) => [i.dataset.style, Number(i.value || 0)]).filter(([, w]) => w > 0));
  if (!Object.keys(mix).length) throw new Error("Style mix: give at least one style a weight above 0.");
  return mix;
}
function chosenAttribute() {
  const m = byName($("model").value);
  return m && !$("field-attribute").hidden ? (m.attributes || []).find((a) => a.name === $("attribute").value) : undefined;
}
function applyAttribute() {
  const a = chosenAttribute();
  $("field-attribute-amount").hidden = !a;
  // 1.0 is the step from the training data's bottom quarter to its top quarter.
  $("attribute-info").textContent = a ? `1 ≈ ${a.gap > 0 ? "+" : ""}${Number(a.gap).toFixed(2)} ${a.unit}` : "";
}
$("attribute").addEventListener("change", applyAttribute);
const signed = (x, digits = 2) => `${x >= 0 ? "+" : ""}${Number(x).toFixed(digits)}`;

function itemCard(item, title) {
  const card = el("div", { class: "item", "data-testid": "result-item", "data-name": item.name });
  const meta = [item.notes != null ? `${item.notes} notes` : null,
                item.seconds != null ? `${Number(item.seconds).toFixed(1)} s` : null].filter(Boolean).join(" · ");
  card.append(el("h3", {}, title || item.name, el("span", { text: meta })));
  if (item.audio) card.append(el("audio", { controls: "", preload: "metadata", src: item.audio, "data-testid": "result-audio" }));
  if (item.png) card.append(el("img", { src: item.png, alt: `Piano roll of ${item.name}`, "data-testid": "result-png" }));
  if (item.midi) {
    card.append(el("a", { class: "download", href: `${item.midi}${item.midi.includes("?") ? "&" : "?"}download=true`, download: `${item.name}.mid`,
                          "data-testid": "result-midi", text: "Download MIDI" }));
  }
  return card;
}
function showJob(target, job) {
  const items = el("div", { class: "items" });
  // With an attribute shift, each piece sits beside the same draw unshifted, to hear the change.
  const paired = job.attribute_change && job.inputs && job.inputs.length === job.items.length;
  job.items.forEach((item, i) => items.append(paired
    ? el("div", { class: "pair", "data-testid": "result-pair" }, itemCard(item, `${item.name} (shifted)`),
         itemCard(job.inputs[i], `${job.inputs[i].name} (as drawn)`))
    : itemCard(item)));
  const summary = el("p", { class: "summary", "data-testid": "job-summary",
    text: `${job.items.length} piece(s)${job.model ? ` from ${job.model}` : ""} in ${Number(job.seconds).toFixed(1)} s · job ${job.job}` });
  const change = job.attribute_change;
  if (change) {
    const moved = change.before === null || change.after === null ? "not measurable on these pieces"
      : `${Number(change.before).toFixed(2)} → ${Number(change.after).toFixed(2)} ${change.unit} (${signed(change.change)})`;
    // What was asked, in the attribute's units: the amount times the model's gap for it.
    const info = ((byName(job.model) || {}).attributes || []).find((a) => a.name === change.attribute);
    const asked = info ? ` (about ${signed(change.asked * info.gap)} ${change.unit} asked)` : "";
    summary.append(el("span", { "data-testid": "attribute-change",
      text: ` · ${change.attribute} shifted by ${signed(change.asked)}${asked}: ${moved}` }));
  }
  if (job.report) summary.append(" · ", el("a", { href: job.report, target: "_blank", text: "report" }));
  target.replaceChildren(summary);
  if (job.sheet) target.append(el("img", { class: "sheet", src: job.sheet, alt: "Interpolation sheet", "data-testid": "interp-sheet" }));
  target.append(items);
  target.dataset.job = job.job;
  target.dataset.state = "done";
}
function resetResults(target) {
  target.replaceChildren();
  target.dataset.state = "loading";
  delete target.dataset.job;
}

// File inputs upload at once, so a bad file is reported before anything is generated.
function watchUpload(id) {
  $(id).addEventListener("change", () => {
    const file = $(id).files[0];
    uploads[id] = null;
    $(`${id}-info`).textContent = "";
    if (CLEARABLE.includes(id)) $(`${id}-clear`).hidden = true;
    if (!file) return;
    run(`Uploading ${file.name}…`, async () => {
      try {
        const up = await api("api/uploads", { method: "POST", body: (() => { const f = new FormData(); f.append("file", file); return f; })() });
        uploads[id] = up.upload;
        $(`${id}-info`).textContent = `${up.filename}: ${up.notes} notes, ${Number(up.seconds).toFixed(1)} s, ${up.tracks} track(s)`;
        if (CLEARABLE.includes(id)) $(`${id}-clear`).hidden = false;
      } catch (e) {
        $(id).value = "";
        throw new Error(`${file.name}: ${e.message}`);
      }
    });
  });
}
["primer", "condition", "interp-a", "interp-b", "clf-file", "render-file"].forEach(watchUpload);
for (const id of CLEARABLE) {
  $(`${id}-clear`).addEventListener("click", () => {
    uploads[id] = null; $(id).value = ""; $(`${id}-info`).textContent = ""; $(`${id}-clear`).hidden = true;
  });
}

$("model").addEventListener("change", applyGenerator);
$("generate").addEventListener("click", () => run("Generating…", async () => {
  const m = byName($("model").value);
  if (!m) throw new Error("Choose a generator model first.");
  checkNumbers(CONTROLS.map(([, id]) => id));
  const body = { model: m.name, render: true };
  for (const [key, id] of CONTROLS) if (m.controls[key]) body[key] = numberOrNull(id);
  if (m.modes.includes("primer") && uploads.primer) body.primer = uploads.primer;
  if (m.modes.includes("condition") && uploads.condition) body.condition = uploads.condition;
  if (!m.modes.includes("generate") && !body.condition) throw new Error(`${m.name} accompanies a melody: upload one first.`);
  if (m.modes.includes("style")) { const style = styleRequest(); if (style) body.style = style; }
  const attribute = chosenAttribute();
  if (attribute) {
    checkNumbers(["attribute-amount"]);
    const amount = numberOrNull("attribute-amount");
    if (amount === null) throw new Error("Shift by: enter an amount.");
    body.attribute = `${attribute.name}:${signed(amount, 3)}`;
  }
  resetResults($("results"));
  let job;
  try { job = await inBackground("generate", body, "Generating…"); } catch (e) { $("results").dataset.state = "error"; throw e; }
  showJob($("results"), job);
  offerToClassify(job);
}));

$("interpolate").addEventListener("click", () => run("Interpolating…", async () => {
  const m = byName($("model").value);
  checkNumbers(["interp-steps", "interp-temperature", "interp-seed", "tempo"]);
  const body = compact({ model: m.name, steps: numberOrNull("interp-steps"),
                         temperature: numberOrNull("interp-temperature"), seed: numberOrNull("interp-seed"),
                         render: true, tempo: m.controls.tempo ? numberOrNull("tempo") : null });
  if (m.modes.includes("interpolate")) {
    if (!uploads["interp-a"] || !uploads["interp-b"]) throw new Error("Upload both MIDI files (From and To) to interpolate.");
    body.a = uploads["interp-a"]; body.b = uploads["interp-b"];
  }
  resetResults($("interp-results"));
  try { showJob($("interp-results"), await postJSON("api/interpolate", body)); } catch (e) { $("interp-results").dataset.state = "error"; throw e; }
}));

// A classifier reads an uploaded file, or a piece just generated (is it in the style asked for?).
function applyClassifier() {
  const m = byName($("clf-model").value);
  $("clf-model-info").textContent = m ? `${m.classes.length} classes: ${m.classes.join(", ")}` +
    (m.hears === "audio" ? " · hears the piece rendered to audio" : "") : "";
}
function applyPiece() { $("field-clf-file").hidden = $("clf-piece").value !== ""; }
function offerToClassify(job) {
  const pieces = job.items.filter((item) => item.midi).map((item) => {
    const file = new URL(item.midi, location.href).pathname.split("/").pop();
    return el("option", { value: `${job.job}/${file}`, text: `generated: ${item.name}` });
  });
  fillSelect($("clf-piece"), pieces, "an uploaded MIDI file");
  if (pieces.length) $("clf-piece").value = pieces[0].value;
  applyPiece();
}
$("clf-model").addEventListener("change", applyClassifier);
$("clf-piece").addEventListener("change", applyPiece);
function showClasses(res) {
  const body = el("tbody");
  for (const c of res.classes) {
    body.append(el("tr", { "data-testid": "clf-row", "data-class": c.name, "data-probability": c.probability },
      el("td", { class: "name", text: c.name }),
      el("td", { class: "num", text: `${(100 * c.probability).toFixed(1)} %` }),
      el("td", { style: "width: 50%" }, el("div", { class: "bar", style: `width: ${(100 * c.probability).toFixed(1)}%` }))));
  }
  const what = res.source.upload ? "the uploaded file" : res.source.file;
  $("clf-results").replaceChildren(
    el("p", { class: "summary", "data-testid": "clf-summary", text: `${res.model}: ${what} is most likely ${res.label}` }),
    el("div", { class: "scroll" }, el("table", { "data-testid": "clf-table" }, el("thead", {}, el("tr", {},
      el("th", { text: "Class" }), el("th", { text: "Probability" }), el("th", {}))), body)));
  $("clf-results").dataset.state = "done";
}
$("classify").addEventListener("click", () => run("Classifying…", async () => {
  const m = byName($("clf-model").value);
  if (!m) throw new Error("Choose a classifier first.");
  const body = { model: m.name };
  const piece = $("clf-piece").value;
  if (piece) { const [job, file] = piece.split("/"); Object.assign(body, { job, file }); }
  else if (uploads["clf-file"]) body.upload = uploads["clf-file"];
  else throw new Error("Upload a MIDI file, or generate a piece, to classify.");
  resetResults($("clf-results"));
  try { showClasses(await postJSON("api/classify", body)); } catch (e) { $("clf-results").dataset.state = "error"; throw e; }
}));

// A MIDI file heard as the service renders it (the SoundFont it renders generated pieces with).
$("render").addEventListener("click", () => run("Rendering…", async () => {
  if (!uploads["render-file"]) throw new Error("Upload a MIDI file to render.");
  resetResults($("render-results"));
  try { showJob($("render-results"), await postJSON("api/render", { upload: uploads["render-file"] })); }
  catch (e) { $("render-results").dataset.state = "error"; throw e; }
}));

function applyRecommender() {
  const m = byName($("rec-model").value);
  fillSelect($("rec-user"), m ? m.users : []);
  // Listeners are listed to an admin (and a listener's own key); another key sees none.
  $("field-rec-user").hidden = !(m && m.users.length);
  fillSelect($("rec-context"), m ? m.contexts : [], "any");
  if (m && m.n_items) $("rec-k").max = m.n_items;
  $("field-rec-text").hidden = !(m && m.text);
  if (!(m && m.text)) $("rec-text").value = "";
}
$("rec-model").addEventListener("change", applyRecommender);
function applyPickFrom() {
  const generated = Boolean($("rec-generator").value);
  $("field-rec-candidates").hidden = !generated;
  // Generated pieces are scored by the hybrid model: the catalog's other rankings do not apply.
  if (generated) $("rec-method").value = "hybrid";
  $("rec-method").disabled = generated;
}
$("rec-generator").addEventListener("change", applyPickFrom);
function showPicks(res) {
  const generated = Boolean(res.job);
  const percentiles = res.picks.some((p) => p.catalog_percentile != null);
  const head = el("tr", {}, el("th", { text: "Rank" }), el("th", { text: generated ? "Piece" : "Track" }), el("th", { text: "Score" }));
  if (percentiles) head.append(el("th", { text: "Beats catalog" }));
  if (generated) head.append(el("th", { text: "Listen" }));
  const explained = res.picks.some((p) => p.reasons);
  if (explained) head.append(el("th", { text: "Why" }));
  const body = el("tbody");
  for (const p of res.picks) {
    const row = el("tr", { "data-testid": "rec-row", "data-rank": p.rank, "data-score": p.score },
      el("td", { class: "num rank", text: p.rank }), el("td", { class: "key", text: p.name ? `${p.name} [${p.key}]` : p.key }),
      el("td", { class: "num score", text: Number(p.score).toFixed(3) }));
    if (percentiles) row.append(el("td", { class: "num", text: p.catalog_percentile == null ? "" : `${Math.round(100 * p.catalog_percentile)} %` }));
    if (generated) row.append(el("td", {}, itemCard({ name: p.key, midi: p.midi, png: p.png, audio: p.audio })));
    if (explained) row.append(el("td", { class: "why", "data-testid": "rec-why", text: p.reasons ? p.reasons.summary : "" }));
    body.append(row);
  }
  const who = res.listener ? Object.entries(res.listener).filter(([, v]) => v !== null && typeof v !== "object")
    .map(([k, v]) => `${k}: ${v}`).join(" · ") : "";
  $("rec-results").replaceChildren(el("p", { class: "summary", text: `${res.picks.length} pick(s) from ${res.model}${who ? " · " + who : ""}` }),
    el("div", { class: "scroll" }, el("table", { "data-testid": "rec-table" }, el("thead", {}, head), body)));
  $("rec-results").dataset.state = "done";
}
$("recommend").addEventListener("click", () => run("Recommending…", async () => {
  const m = byName($("rec-model").value);
  if (!m) throw new Error("Choose a recommender model first.");
  checkNumbers(["rec-k", "rec-candidates"]);
  const text = $("rec-text").value.trim();
  if (!text && !$("rec-user").value) {
    throw new Error(m.text ? "Choose a listener, or describe the music in words."
      : "This key lists no listener of this recommender: use a listener's own key, or an admin key.");
  }
  // Words, when given, stand for the listener (and say the context themselves).
  const body = text ? { model: m.name, text, k: numberOrNull("rec-k") }
    : { model: m.name, user: $("rec-user").value || null, context: $("rec-context").value || null, k: numberOrNull("rec-k") };
  body.method = $("rec-method").value;
  const gen = byName($("rec-generator").value);
  if (gen) {
    Object.assign(body, { generator: gen.name, candidates: numberOrNull("rec-candidates"), render: true });
    if (gen.controls.bars) body.bars = gen.controls.bars.default;
  }
  resetResults($("rec-results"));
  try {
    showPicks(gen ? await inBackground("recommend", body, "Generating and scoring…") : await postJSON("api/recommend", body));
  } catch (e) { $("rec-results").dataset.state = "error"; throw e; }
}));

// The form as the user left it: a reload (a new key) lists models again and keeps it.
const KEPT = ["model", "rec-model", "rec-generator", "rec-method", "rec-user", "rec-context", "clf-model", "style",
              "attribute", "attribute-amount", ...CONTROLS.map(([, id]) => id)];
function keepForm() { return Object.fromEntries([...KEPT, ...mixInputs().map((i) => i.id)].map((id) => [id, $(id).value])); }
function restoreForm(kept) {
  for (const [id, value] of Object.entries(kept)) {
    const input = $(id);
    if (!input) continue;  // a style weight of a model no longer listed
    if (input.tagName !== "SELECT" || [...input.options].some((o) => o.value === value)) input.value = value;
  }
}
async function loadModels() {
  const listing = await api("api/models");
  const kept = models.length ? keepForm() : null;
  models = listing.models;
  fillSelect($("model"), generators().map((m) => m.name));
  fillSelect($("rec-model"), models.filter((m) => m.kind === "recommender").map((m) => m.name));
  fillSelect($("rec-generator"), generators().map((m) => m.name), "catalog");
  $("generate-section").hidden = generators().length === 0;
  $("rec-section").hidden = !models.some((m) => m.kind === "recommender");
  const classifiers = models.filter((m) => m.kind === "classifier");
  fillSelect($("clf-model"), classifiers.map((m) => m.name));
  fillSelect($("clf-piece"), [], "an uploaded MIDI file");
  $("clf-section").hidden = classifiers.length === 0;
  if (kept) restoreForm({ model: kept.model, "rec-model": kept["rec-model"], "clf-model": kept["clf-model"] });
  applyClassifier();
  applyPiece();
  applyGenerator();
  applyRecommender();
  if (kept) { restoreForm(kept); applyStyle(); applyAttribute(); }  // what was typed, over the defaults
  applyPickFrom();
  if (listing.failed && listing.failed.length) {  // admins (and an open service) see these
    showStatus(`Not served: ${listing.failed.map((f) => `${f.file} (${f.error})`).join("; ")}`, "warning");
  }
}
async function showHealth() {  // public: shown whatever the key
  try {
    const health = await api("api/health");
    $("health").textContent = `v${health.version} · ${health.models} model(s) · ${health.workers} worker(s)`;
  } catch (e) { $("health").textContent = ""; }
}
async function start() {
  showHealth();
  await run("Loading models…", loadModels);
  document.body.dataset.ready = "true";
}
$("api-key").value = sessionStorage.getItem("cadenza-key") || "";
// A new key lists the models it may use again, without taking the buttons away: leaving the
// field is what fires this, often on the way to a button, whose click must still land.
$("api-key").addEventListener("change", async () => {
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem("cadenza-key", key); else sessionStorage.removeItem("cadenza-key");
  showStatus("", "info");
  try { await loadModels(); } catch (e) { showStatus(e.message, "error"); }
});
start();
