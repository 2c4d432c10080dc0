// Strataflow web console: plain JS over the public v1 API; no build step, nothing fetched from elsewhere.
"use strict";

const KEY = "strataflow.apiKey";
const NS = "strataflow.namespace";
const TERMINAL = ["COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"];
const KINDS = {  // bucket property per kind, as `strataflow ingest` lays buckets out
  text: [".txt", ".md", ".markdown", ".rst", ".csv", ".json", ".html", ".htm", ".xml", ".log"],
  image: [".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"],
  video: [".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"],
  audio: [".mp3", ".wav", ".m4a", ".flac", ".ogg", ".opus", ".aac"],
  pdf: [".pdf"],
};
let timers = [];  // polling loops of the current view, stopped on navigation

// ---------- small helpers ----------
const $ = (sel, root = document) => root.querySelector(sel);
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}
const badge = (status) => h("span", { class: `badge ${status}` }, status);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
function bar(done, total, status) {
  const pct = total ? Math.min(100, Math.round((100 * done) / total)) : (TERMINAL.includes(status) ? 100 : 0);
  const cls = status === "FAILED" ? "progress failed" : (status === "COMPLETED" ? "progress done" : "progress");
  return h("div", { class: cls, role: "progressbar", "aria-valuenow": pct }, h("div", { style: `width:${pct}%` }));
}
function toast(message, bad = false) {
  const el = $("#toast");
  el.textContent = message; el.className = bad ? "toast bad" : "toast"; el.hidden = false;
  clearTimeout(toast.t); toast.t = setTimeout(() => { el.hidden = true; }, 5000);
}
function kindOf(name) {
  const dot = name.lastIndexOf(".");
  const suffix = dot >= 0 ? name.slice(dot).toLowerCase() : "";
  return Object.keys(KINDS).find((k) => KINDS[k].includes(suffix)) || null;
}
function every(ms, fn) { const id = setInterval(fn, ms); timers.push(id); return id; }

// ---------- the API ----------
class ApiError extends Error { constructor(message, status) { super(message); this.status = status; } }
async function api(method, path, body, { namespace = true } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` };
  if (namespace && sessionStorage.getItem(NS)) headers["X-Namespace"] = sessionStorage.getItem(NS);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401) { signOut("Your API key was refused; sign in again."); }
    throw new ApiError((data && data.error && data.error.message) || `HTTP ${response.status}`, response.status);
  }
  return data;
}
async function sha256(file) {
  if (!(window.crypto && crypto.subtle)) return null;  // plain-http remote origins have no WebCrypto
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
function putWithProgress(url, file, contentType, onProgress) {
  return new Promise((resolve, reject) => {  // XHR, because fetch reports no upload progress
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("Content-Type", contentType);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => (xhr.status < 300 ? resolve((xhr.getResponseHeader("ETag") || "").replaceAll('"', ""))
      : reject(new Error(JSON.parse(xhr.responseText || "{}").error?.message || `PUT failed (${xhr.status})`)));
    xhr.onerror = () => reject(new Error("network error during upload"));
    xhr.send(file);
  });
}

// ---------- session ----------
function signOut(message) {
  sessionStorage.removeItem(KEY);
  $("#shell").hidden = true; $("#login").hidden = false;
  const err = $("#login-error");
  err.hidden = !message; err.textContent = message || "";
}
async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  const namespaces = await api("GET", "/v1/namespaces?limit=100", undefined, { namespace: false });
  $("#login").hidden = true; $("#shell").hidden = false;
  fillNamespaces(namespaces.results);
  route();
}
function fillNamespaces(list) {
  const select = $("#namespace");
  select.replaceChildren(...list.map((n) => h("option", { value: n.namespace_name }, n.namespace_name)));
  const saved = sessionStorage.getItem(NS);
  if (!list.some((n) => n.namespace_name === saved)) {
    if (list.length) sessionStorage.setItem(NS, list[0].namespace_name); else sessionStorage.removeItem(NS);
  }
  select.value = sessionStorage.getItem(NS) || "";
}

// ---------- routing ----------
const VIEWS = { buckets: viewBuckets, bucket: viewBucket, collections: viewCollections, batches: viewBatches,
  batch: viewBatch, tasks: viewTasks, search: viewSearch, clusters: viewClusters, cluster: viewCluster,
  taxonomies: viewTaxonomies, taxonomy: viewTaxonomy };
async function route() {
  timers.forEach(clearInterval); timers = [];
  const [name, ...args] = (location.hash.replace(/^#\//, "") || "buckets").split("/").map(decodeURIComponent);
  document.querySelectorAll(".sidebar a").forEach((a) => {
    a.classList.toggle("active", a.dataset.view === name || a.dataset.view === `${name}s`);
  });
  const view = $("#view");
  view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  if (!sessionStorage.getItem(NS)) {
    view.replaceChildren(h("div", { class: "card empty" }, "No namespace yet. Create one with “+ Namespace”, ",
      "or run ", h("code", {}, "strataflow ingest FOLDER --bucket NAME"), "."));
    return;
  }
  try { await (VIEWS[name] || viewBuckets)(view, ...args); } catch (error) {
    view.replaceChildren(h("div", { class: "card empty error" }, error.message));
  }
}
const head = (title, subtitle, ...actions) => h("div", { class: "view-head" },
  h("div", {}, h("h1", {}, title), subtitle ? h("div", { class: "muted" }, subtitle) : null),
  h("div", { class: "row" }, ...actions));
function tableOf(headers, rows, empty) {
  if (!rows.length) return h("div", { class: "card empty" }, empty);
  return h("div", { class: "card table-card" }, h("table", {},
    h("thead", {}, h("tr", {}, ...headers.map((x) => h("th", {}, x)))), h("tbody", {}, ...rows)));
}

// ---------- buckets and objects ----------
async function viewBuckets(view) {
  const buckets = (await api("GET", "/v1/buckets?limit=100")).results;
  const create = h("button", { class: "primary", onclick: newBucket }, "New bucket");
  view.replaceChildren(head("Buckets", `${buckets.length} in ${sessionStorage.getItem(NS)}`, create),
    buckets.length ? h("div", { class: "cards" }, ...buckets.map((b) => h("div", {
      class: "card bucket-card", onclick: () => { location.hash = `#/bucket/${b.bucket_name}`; } },
    h("div", { class: "name" }, b.bucket_name), h("div", { class: "muted mono" }, b.bucket_id),
    h("div", { class: "chips" }, ...Object.entries(b.bucket_schema?.properties || {})
      .map(([p, s]) => h("span", { class: "chip" }, `${p}: ${s.type}`))),
    h("div", { class: "muted" }, plural(b.object_count, "object")))))
      : h("div", { class: "card empty" }, "No buckets yet."));
}
async function newBucket() {
  const name = prompt("Bucket name (letters, digits, _ and -):");
  if (!name) return;
  const properties = Object.fromEntries(Object.keys(KINDS).map((k) => [k, { type: k }]));
  Object.assign(properties, { filename: { type: "string" }, path: { type: "string" } });
  try {
    await api("POST", "/v1/buckets", { bucket_name: name, bucket_schema: { properties } });
    location.hash = `#/bucket/${name}`;
  } catch (error) { toast(error.message, true); }
}

async function viewBucket(view, bucketName) {
  const bucket = await api("GET", `/v1/buckets/${bucketName}`);
  const properties = bucket.bucket_schema?.properties || {};
  const input = h("input", { type: "file", multiple: true, hidden: true, id: "file-input",
    onchange: (e) => uploadFiles(bucket, properties, [...e.target.files]) });
  const zone = h("div", { class: "dropzone", id: "dropzone" },
    h("strong", {}, "Drop files here to upload"), " or ", h("label", { class: "pick", for: "file-input" }, "choose files"),
    input, h("div", { class: "muted" }, "Uploaded through presigned URLs, then processed by this bucket's collections."),
    h("div", { class: "uploads", id: "uploads" }));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    uploadFiles(bucket, properties, [...e.dataTransfer.files]);
  });
  const grid = h("div", { class: "objects", id: "objects" });
  view.replaceChildren(
    head(bucket.bucket_name, h("span", { class: "mono" }, bucket.bucket_id),
      h("a", { href: `#/batches/${bucket.bucket_name}` }, "Batches →")),
    zone, h("div", { id: "batch-live" }), h("h2", {}, "Objects"), grid);
  await loadObjects(bucket, grid);
}
async function loadObjects(bucket, grid) {
  const listed = (await api("POST", `/v1/buckets/${bucket.bucket_id}/objects/list?limit=48`,
    { sort: { field: "created_at", direction: "desc" } })).results;
  if (!listed.length) { grid.replaceChildren(h("div", { class: "card empty" }, "No objects yet.")); return; }
  // The list has no URLs; each card asks for its object with a fresh presigned GET URL.
  const cards = await Promise.all(listed.map(async (o) => {
    const full = await api("GET", `/v1/buckets/${bucket.bucket_id}/objects/${o.object_id}?return_presigned_urls=true`);
    return objectCard(full);
  }));
  grid.replaceChildren(...cards);
}
function objectCard(o) {
  const blob = (o.blobs || [])[0] || {};
  const url = blob.properties?.presigned_url;
  const name = o.metadata?.filename || blob.properties?.filename || o.object_id;
  let preview = h("span", { class: "kind" }, (blob.type || "object").toUpperCase());
  if (url && blob.type === "image") preview = h("img", { src: url, alt: name, loading: "lazy" });
  else if (url && blob.type === "video") preview = h("video", { src: url, muted: true, preload: "metadata", controls: true });
  else if (url && blob.type === "text") {
    preview = h("div", { class: "textpeek" }, "…");
    fetch(url).then((r) => r.text()).then((t) => { preview.textContent = t.slice(0, 400); }).catch(() => {});
  }
  return h("div", { class: "card object", "data-object-id": o.object_id }, h("div", { class: "preview" }, preview),
    h("div", { class: "meta" }, h("div", { class: "name", title: name }, name),
      h("div", { class: "muted mono" }, o.object_id), h("div", {}, badge(o.status || "ACTIVE"))));
}

async function uploadFiles(bucket, properties, files) {
  const list = $("#uploads");
  const made = [];
  await Promise.all(files.map(async (file) => {
    const kind = kindOf(file.name);
    const property = kind && properties[kind]?.type === kind ? kind
      : Object.keys(properties).find((p) => properties[p].type === kind);
    const progress = bar(0, 1, "PENDING");
    const state = h("span", { class: "muted" }, "hashing");
    list.append(h("div", { class: "upload-row" }, h("span", {}, file.name), progress, state));
    const fail = (message) => { state.textContent = message; state.className = "error"; progress.className = "progress failed"; };
    if (!property) { fail(`no ${kind || "matching"} property`); return; }
    try {
      const hash = await sha256(file);
      const contentType = file.type || (kind === "text" ? "text/plain" : "application/octet-stream");
      const upload = await api("POST", `/v1/buckets/${bucket.bucket_id}/uploads`, {
        filename: file.name, content_type: contentType, file_size_bytes: file.size, blob_property: property,
        file_hash: hash, skip_duplicates: true, object_metadata: { filename: file.name, path: file.name } });
      if (upload.is_duplicate) { state.textContent = "already there"; progress.className = "progress done"; progress.firstChild.style.width = "100%"; return; }
      state.textContent = "uploading";
      const etag = await putWithProgress(upload.presigned_url, file, contentType,
        (f) => { progress.firstChild.style.width = `${Math.round(f * 100)}%`; });
      const confirmed = await api("POST", `/v1/buckets/${bucket.bucket_id}/uploads/${upload.upload_id}/confirm`,
        { etag, file_size_bytes: file.size });
      state.textContent = "uploaded"; state.className = "ok";
      progress.className = "progress done"; progress.firstChild.style.width = "100%";
      if (confirmed.object_id) made.push(confirmed.object_id);
    } catch (error) { fail(error.message); }
  }));
  await loadObjects(bucket, $("#objects"));
  if (!made.length) return;
  const collections = (await api("POST", "/v1/collections/list?limit=100", {})).results
    .filter((c) => (c.source?.bucket_ids || []).includes(bucket.bucket_id));
  if (!collections.length) { toast("Uploaded. This bucket has no collections, so nothing is processed."); return; }
  const batch = await api("POST", `/v1/buckets/${bucket.bucket_id}/batches`, { object_ids: made });
  await api("POST", `/v1/buckets/${bucket.bucket_id}/batches/${batch.batch_id}/submit`, {});
  const panel = $("#batch-live");
  if (panel) followBatch(panel, bucket.bucket_id, batch.batch_id);
}

// ---------- batches ----------
// A tier's buttons: cancel it (and the tiers after it) while the batch runs; retry or heal it once it has stopped.
function tierActions(bucketId, batch, t, changed) {
  if (!changed) return null;
  const base = `/v1/buckets/${bucketId}/batches/${batch.batch_id}/tiers/${t.tier_num}`;
  const act = (label, path, body) => h("button", { class: "ghost", "data-action": label.toLowerCase(), onclick: async (e) => {
    e.target.disabled = true;
    try { const answer = await api("POST", path, body); toast(answer.message || `${label}: done`); }
    catch (error) { toast(error.message, true); }
    changed();
  } }, label);
  const running = !TERMINAL.includes(batch.status);
  const buttons = [];
  if (running && ["PENDING", "IN_PROGRESS"].includes(t.status)) buttons.push(act("Cancel", `${base}/cancel`));
  if (!running && ["FAILED", "COMPLETED_WITH_ERRORS", "CANCELED"].includes(t.status)) buttons.push(act("Retry", `${base}/retry`, {}));
  if (!running && ["COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED"].includes(t.status)) {
    buttons.push(act("Heal", `${base}/heal`, { action: "sync_status" }));
  }
  return h("div", { class: "row" }, buttons);
}
async function batchPanel(bucketId, batchId, names, changed) {
  const batch = await api("GET", `/v1/buckets/${bucketId}/batches/${batchId}`);
  const tiers = (batch.tier_tasks || []).map((t) => {
    const perf = t.performance || {};
    const eta = perf.eta_seconds !== undefined ? ` · about ${Math.round(perf.eta_seconds)}s left` : "";
    return h("div", { class: "tier", "data-tier": t.tier_num },
      h("div", { class: "label" }, `Tier ${t.tier_num}`),
      h("div", {}, h("div", { class: "cols" }, (t.collection_ids || []).map((c) => names[c] || c).join(", ")),
        bar(perf.rows_done || 0, perf.rows_total || 0, t.status)),
      h("div", { class: "muted" }, `${perf.rows_done || 0} / ${perf.rows_total ?? "?"} rows · `,
        plural(t.documents_written || 0, "document"), eta),
      h("div", {}, badge(t.status), t.error_summary ? h("span", { class: "error" },
        ` ${Object.values(t.error_summary).reduce((a, b) => a + b, 0)} failed`) : null),
      tierActions(bucketId, batch, t, changed));
  });
  const panel = h("div", { class: "card batch-panel", id: `batch-${batchId}`, "data-status": batch.status },
    h("div", { class: "head" }, h("div", {}, h("strong", {}, "Batch "), h("span", { class: "mono" }, batchId)),
      badge(batch.status)),
    tiers.length ? tiers : h("div", { class: "muted" }, batch.status === "DRAFT" ? "Not submitted yet." : "Planning tiers…"));
  return { batch, panel };
}
async function collectionNames() {
  const list = (await api("POST", "/v1/collections/list?limit=100", {})).results;
  return Object.fromEntries(list.map((c) => [c.collection_id, c.collection_name]));
}
async function followBatch(slot, bucketId, batchId, withActions = false) {
  const names = await collectionNames();
  let polling = null;
  const draw = async () => {
    // After a tier button: a stopped batch may run again, so start polling again.
    const changed = withActions ? () => { if (!polling) followBatch(slot, bucketId, batchId, true); } : null;
    const { batch, panel } = await batchPanel(bucketId, batchId, names, changed);
    slot.replaceChildren(panel);
    return TERMINAL.includes(batch.status);
  };
  if (await draw()) return;
  polling = every(700, async () => { if (await draw().catch(() => true)) { clearInterval(polling); polling = null; } });
}
// The audit: per tier and collection, rows with documents and why the others have none.
async function showAudit(slot, bucketId, batchId) {
  const audit = await api("GET", `/v1/buckets/${bucketId}/batches/${batchId}/audit`);
  const counts = audit.tiers.filter((t) => t.ran).flatMap((t) => t.collections.map((c) => h("tr", {},
    h("td", {}, `tier ${t.tier_num}`), h("td", { class: "mono" }, c.collection_id), h("td", {}, c.submitted),
    h("td", {}, c.processed), h("td", {}, c.failed), h("td", {}, c.no_input), h("td", {}, c.filtered),
    h("td", { class: c.lost ? "error" : "" }, c.lost), h("td", {}, c.orphaned_documents))));
  const gaps = audit.rows.slice(0, 100).map((r) => h("tr", {}, h("td", { class: "mono" }, r.object_id || r.document_id),
    h("td", { class: "mono" }, r.root_object_id), h("td", {}, `tier ${r.tier_num}`), h("td", {}, r.reason),
    h("td", { class: "muted" }, r.error_message || "")));
  slot.replaceChildren(h("h2", {}, audit.has_lost_objects ? `Audit: ${plural(audit.lost_count, "lost row")}` : "Audit: nothing lost"),
    tableOf(["tier", "collection", "rows", "with documents", "failed", "no input", "filtered", "lost", "orphaned"], counts,
      "No tier has run yet."),
    tableOf(["row", "object", "tier", "why no documents", "error"], gaps, "Every row has its documents."));
}
async function viewBatches(view, bucketName) {
  const buckets = (await api("GET", "/v1/buckets?limit=100")).results;
  if (!buckets.length) { view.replaceChildren(head("Batches"), h("div", { class: "card empty" }, "No buckets yet.")); return; }
  const bucket = buckets.find((b) => b.bucket_name === bucketName) || buckets[0];
  const picker = h("select", { onchange: (e) => { location.hash = `#/batches/${e.target.value}`; } },
    ...buckets.map((b) => h("option", { value: b.bucket_name, selected: b === bucket }, b.bucket_name)));
  const list = (await api("POST", `/v1/buckets/${bucket.bucket_id}/batches/list`, { limit: 100 })).results;
  const rows = list.map((b) => h("tr", { class: "clickable", onclick: () => { location.hash = `#/batch/${bucket.bucket_name}/${b.batch_id}`; } },
    h("td", { class: "mono" }, b.batch_id), h("td", {}, badge(b.status)), h("td", {}, (b.object_ids || []).length),
    h("td", {}, (b.tier_tasks || []).length), h("td", {}, when(b.created_at))));
  view.replaceChildren(head("Batches", "Objects pushed through the collection DAG, tier by tier", picker),
    tableOf(["batch", "status", "objects", "tiers", "created"], rows, "No batches in this bucket yet."));
}
async function viewBatch(view, bucketName, batchId) {
  const bucket = await api("GET", `/v1/buckets/${bucketName}`);
  const slot = h("div", {});
  const auditSlot = h("div", { id: "batch-audit" });
  const audit = h("button", { class: "ghost", onclick: () => showAudit(auditSlot, bucket.bucket_id, batchId)
    .catch((error) => toast(error.message, true)) }, "Audit");
  view.replaceChildren(head("Batch", h("span", { class: "mono" }, batchId), audit,
    h("a", { href: `#/batches/${bucketName}` }, "← All batches")), slot, auditSlot);
  await followBatch(slot, bucket.bucket_id, batchId, true);
}

// ---------- collections and the DAG ----------
async function viewCollections(view) {
  const [collections, buckets] = await Promise.all([api("POST", "/v1/collections/list?limit=100", {}),
    api("GET", "/v1/buckets?limit=100")]);
  const cols = collections.results;
  const byId = Object.fromEntries(cols.map((c) => [c.collection_id, c]));
  const tierOf = {};  // tier 0 reads a bucket; tier N reads a tier N-1 collection
  const tier = (c, depth = 0) => {
    if (tierOf[c.collection_id] !== undefined) return tierOf[c.collection_id];
    const ups = c.source?.type === "collection" ? (c.source.collection_ids || [c.source.collection_id]) : [];
    const t = ups.length && depth < 40 ? 1 + Math.max(...ups.map((u) => (byId[u] ? tier(byId[u], depth + 1) : 0))) : 0;
    return (tierOf[c.collection_id] = t);
  };
  cols.forEach((c) => tier(c));
  const depth = cols.length ? Math.max(...Object.values(tierOf)) + 1 : 0;
  const columns = [h("div", { class: "dag-tier" }, h("h3", {}, "Buckets"), ...buckets.results.map((b) =>
    h("div", { class: "node bucket", "data-node": b.bucket_id }, h("div", { class: "title" }, b.bucket_name),
      h("div", { class: "sub" }, plural(b.object_count, "object")))))];
  for (let t = 0; t < depth; t++) {
    columns.push(h("div", { class: "dag-tier" }, h("h3", {}, `Tier ${t}`), ...cols.filter((c) => tierOf[c.collection_id] === t)
      .map((c) => h("div", { class: "node", "data-node": c.collection_id },
        h("div", { class: "title" }, c.collection_name),
        h("div", { class: "sub" }, `${c.feature_extractor?.feature_extractor_name} · ${plural(c.document_count ?? 0, "document")}`)))));
  }
  const dag = h("div", { class: "card dag", id: "dag" }, ...columns);
  const rows = cols.map((c) => h("tr", {}, h("td", {}, h("strong", {}, c.collection_name), h("div", { class: "muted mono" }, c.collection_id)),
    h("td", {}, c.feature_extractor?.feature_extractor_name), h("td", {}, `tier ${tierOf[c.collection_id]}`),
    h("td", {}, c.document_count ?? 0)));
  view.replaceChildren(head("Collections", "Each tier reads the one before it"), dag, h("h2", {}, "All collections"),
    tableOf(["collection", "extractor", "tier", "documents"], rows, "No collections yet."));
  drawEdges(dag, cols);
}
function drawEdges(dag, cols) {  // straight curves from each source node to the collection that reads it
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "edges");
  const box = dag.getBoundingClientRect();
  for (const c of cols) {
    const to = dag.querySelector(`[data-node="${c.collection_id}"]`);
    const sources = c.source?.type === "collection" ? (c.source.collection_ids || [c.source.collection_id]) : (c.source?.bucket_ids || []);
    for (const s of sources) {
      const from = dag.querySelector(`[data-node="${s}"]`);
      if (!from || !to) continue;
      const a = from.getBoundingClientRect(); const b = to.getBoundingClientRect();
      const x1 = a.right - box.left, y1 = a.top + a.height / 2 - box.top, x2 = b.left - box.left, y2 = b.top + b.height / 2 - box.top;
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", `M${x1},${y1} C${x1 + 20},${y1} ${x2 - 20},${y2} ${x2},${y2}`);
      path.setAttribute("stroke", "#a5b4fc"); path.setAttribute("stroke-width", "2"); path.setAttribute("fill", "none");
      svg.append(path);
    }
  }
  dag.prepend(svg);
}

// ---------- taxonomies: the tree, and what each document was assigned ----------
async function viewTaxonomies(view) {
  const list = (await api("GET", "/v1/taxonomies?limit=100")).results;
  const rows = list.map((t) => h("tr", {}, h("td", {}, h("a", { href: `#/taxonomy/${t.taxonomy_id}` }, t.taxonomy_name),
    h("div", { class: "muted mono" }, t.taxonomy_id)), h("td", {}, t.config.taxonomy_type), h("td", {}, `v${t.version}`)));
  view.replaceChildren(head("Taxonomies", "Joins from documents to the nodes of a reference collection"),
    tableOf(["taxonomy", "type", "version"], rows, "No taxonomies yet."));
}

function treeOf(taxonomy, names) {  // [label, depth] per node, root first
  const config = taxonomy.config;
  if (config.path_field) return (taxonomy.nodes || []).slice().sort((a, b) => a.path.join("/").localeCompare(b.path.join("/")))
    .map((n) => [n.label, n.level]);
  if (config.taxonomy_type === "flat") return [[names[config.source_collection.collection_id] || config.source_collection.collection_id, 0]];
  const nodes = config.hierarchical_nodes || [];
  const out = [];
  const walk = (parent, depth) => nodes.filter((n) => (n.parent_collection_id || null) === parent).forEach((n) => {
    out.push([n.label || names[n.collection_id] || n.collection_id, depth]); walk(n.collection_id, depth + 1);
  });
  walk(null, 0);
  return out;
}

async function viewTaxonomy(view, taxonomyId) {
  const [taxonomy, names, collections] = await Promise.all([api("GET", `/v1/taxonomies/${encodeURIComponent(taxonomyId)}`),
    collectionNames(), api("POST", "/v1/collections/list?limit=100", {})]);
  const tree = h("div", { class: "card" }, ...treeOf(taxonomy, names).map(([label, depth]) =>
    h("div", { style: `padding-left:${depth * 1.5}rem` }, depth ? "└ " : "", label)));
  const users = collections.results.filter((c) => (c.taxonomy_applications || []).some((a) => a.taxonomy_id === taxonomy.taxonomy_id));
  const prefix = `_taxonomy_${taxonomy.taxonomy_id}_`;
  const sections = [];
  for (const c of users) {  // an application with a target_collection_id writes its documents there
    const app = c.taxonomy_applications.find((a) => a.taxonomy_id === taxonomy.taxonomy_id);
    const written = app.target_collection_id || c.collection_id;
    const docs = (await api("POST", `/v1/collections/${written}/documents/list?limit=50`, {})).results;
    const rows = docs.map((d) => h("tr", {}, h("td", { class: "mono" }, d.document_id),
      h("td", {}, (d._internal[`${prefix}path`] || [d._internal[`${prefix}label`] || "—"]).join(" › ")),
      h("td", {}, d._internal[`${prefix}score`] === undefined ? "" : Number(d._internal[`${prefix}score`]).toFixed(3))));
    const title = written === c.collection_id ? c.collection_name : `${c.collection_name} → ${names[written] || written}`;
    sections.push(h("h2", {}, title), tableOf(["document", "assigned", "score"], rows, "No documents yet."));
  }
  view.replaceChildren(head(taxonomy.taxonomy_name, `${taxonomy.config.taxonomy_type} · version ${taxonomy.version}`),
    h("h2", {}, "Tree"), tree, ...(sections.length ? sections : [h("div", { class: "card empty" }, "No collection applies this taxonomy.")]));
}

// ---------- tasks ----------
async function viewTasks(view) {
  const tasks = (await api("POST", "/v1/tasks/list?limit=100", { sort: { field: "created_at", direction: "desc" } })).results;
  const rows = tasks.map((t) => h("tr", {}, h("td", { class: "mono" }, t.task_id), h("td", {}, t.task_type),
    h("td", {}, badge(t.status)), h("td", { class: "error" }, t.error || "")));
  view.replaceChildren(head("Tasks", "Every piece of asynchronous work; tasks never expire"),
    tableOf(["task", "type", "status", "error"], rows, "No tasks yet."));
  every(2000, async () => {
    if (!document.hidden && location.hash.startsWith("#/tasks")) {
      const fresh = (await api("POST", "/v1/tasks/list?limit=100", { sort: { field: "created_at", direction: "desc" } })).results;
      if (JSON.stringify(fresh.map((t) => [t.task_id, t.status])) !== JSON.stringify(tasks.map((t) => [t.task_id, t.status]))) route();
    }
  });
}

// ---------- search ----------
async function viewSearch(view) {
  const collections = (await api("POST", "/v1/collections/list?limit=100", {})).results;
  const select = h("select", { id: "search-collection" }, ...collections.map((c) => h("option", { value: c.collection_id }, c.collection_name)));
  const query = h("input", { id: "search-query", placeholder: "Search documents…", type: "search" });
  const results = h("div", { class: "hits", id: "hits" });
  const form = h("form", { class: "searchbar", onsubmit: async (e) => {
    e.preventDefault();
    results.replaceChildren(h("p", { class: "muted" }, "Searching…"));
    try { results.replaceChildren(...(await search(select.value, query.value))); } catch (error) {
      results.replaceChildren(h("div", { class: "card empty error" }, error.status === 404 && /retriever|Not Found/i.test(error.message)
        ? "This server has no retrievers endpoint yet." : error.message));
    }
  } }, select, query, h("button", { class: "primary", type: "submit" }, "Search"));
  view.replaceChildren(head("Search", "Semantic search over a collection's features"), collections.length ? form
    : h("div", { class: "card empty" }, "No collections to search yet."), results);
}
async function search(collectionId, text) {
  const features = await api("GET", `/v1/collections/${collectionId}/features`);
  // Text can be compared with every feature but a colour/edge descriptor; a vision model's feature, when the
  // collection has one, comes first (its primary feature), so images and video segments are searched by what they show.
  const uris = (features.features || features.results || []).map((f) => f.feature_uri || f.uri)
    .filter((uri) => uri && !uri.endsWith("/visual_descriptor"));
  if (!uris.length) throw new Error("This collection has no feature a text query can search.");
  const answer = await api("POST", "/v1/retrievers/execute", {
    collection_identifiers: [collectionId],
    input_schema: { query: { type: "text" } },
    stages: [{ stage_name: "search", stage_type: "filter", config: { stage_id: "feature_search", parameters: {
      searches: [{ feature_uri: uris[0], query: "{{INPUT.query}}", top_k: 20 }], final_top_k: 10 } } }],
    inputs: { query: text } });
  const docs = answer.documents || answer.results || [];
  if (!docs.length) return [h("div", { class: "card empty" }, "No hits.")];
  return docs.map((d) => {
    const lineage = d._internal?.lineage || {};
    const thumbUrl = d.thumbnail_url || d.image_url || (d._internal?.document_blobs || []).find((b) => b.presigned_url)?.presigned_url;
    const where = [d.filename || d.path, d.start_time !== undefined ? `${d.start_time}s–${d.end_time}s` : null,
      d.page_number !== undefined ? `page ${d.page_number}` : null].filter(Boolean).join(" · ");
    return h("div", { class: "card hit", "data-document-id": d.document_id },
      h("div", { class: "thumb" }, thumbUrl ? h("img", { src: thumbUrl, alt: "" }) : h("span", { class: "muted" }, "text")),
      h("div", {}, h("div", {}, (d.text || d.transcription || d.description || "").slice(0, 300)),
        h("div", { class: "lineage" }, where, where ? " · " : "", "object ", h("span", { class: "mono" }, lineage.root_object_id || "?"),
          lineage.path ? h("span", {}, " · ", h("span", { class: "mono" }, lineage.path)) : null)),
      h("div", { class: "score" }, (d.score ?? 0).toFixed(3)));
  });
}

// ---------- wiring ----------
$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try { await signIn($("#login-key").value.trim()); } catch (error) {
    signOut(error.message);
  }
});
$("#logout").addEventListener("click", () => signOut());
$("#namespace").addEventListener("change", (e) => { sessionStorage.setItem(NS, e.target.value); route(); });
$("#new-namespace").addEventListener("click", async () => {
  const name = prompt("Namespace name:");
  if (!name) return;
  try {
    await api("POST", "/v1/namespaces", { namespace_name: name }, { namespace: false });
    sessionStorage.setItem(NS, name);
    fillNamespaces((await api("GET", "/v1/namespaces?limit=100", undefined, { namespace: false })).results);
    route();
  } catch (error) { toast(error.message, true); }
});
window.addEventListener("hashchange", route);
if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY)).catch((e) => signOut(e.message));
else signOut();

// ---------- clusters: the list, and one cluster's scatter coloured by group ----------
const PALETTE = ["#4f46e5", "#e11d48", "#059669", "#d97706", "#0891b2", "#7c3aed", "#65a30d", "#db2777",
  "#2563eb", "#ea580c", "#0d9488", "#9333ea"];
const colourOf = (clusterId) => (clusterId === "noise" ? "#9ca3af"
  : PALETTE[Number(clusterId.replace("cl_", "")) % PALETTE.length]);
async function runCluster(id) {
  try { await api("POST", `/v1/clusters/${encodeURIComponent(id)}/execute`, {}); toast("Run queued"); route(); }
  catch (error) { toast(error.message, true); }
}
async function viewClusters(view) {
  const clusters = (await api("GET", "/v1/clusters?limit=100")).results;
  const rows = clusters.map((c) => h("tr", {},
    h("td", {}, h("a", { href: `#/cluster/${encodeURIComponent(c.cluster_id)}` }, c.cluster_name)),
    h("td", {}, c.algorithm || c.cluster_type), h("td", {}, badge(c.status)),
    h("td", {}, c.num_clusters ?? "—"), h("td", {}, c.num_documents_clustered ?? "—"),
    h("td", {}, h("button", { class: "ghost", onclick: () => runCluster(c.cluster_id) }, "Run"))));
  view.replaceChildren(head("Clusters", `${plural(clusters.length, "cluster")} in ${sessionStorage.getItem(NS)}`),
    tableOf(["Name", "Algorithm", "Status", "Groups", "Documents", ""], rows,
      "No clusters yet: create one with POST /v1/clusters (see docs/clusters.md)."));
}
function scatter(picture) {
  const NS_SVG = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS_SVG, "svg");
  const W = 640, H = 420, P = 16;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("class", "scatter");
  const m = picture.members;
  const xs = [...m.x, ...picture.centroids.map((c) => c.x)], ys = [...m.y, ...picture.centroids.map((c) => c.y)];
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => P + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * P);
  const sy = (y) => H - P - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * P);
  const dot = (x, y, r, fill, title, stroke) => {
    const c = document.createElementNS(NS_SVG, "circle");
    c.setAttribute("cx", sx(x)); c.setAttribute("cy", sy(y)); c.setAttribute("r", r); c.setAttribute("fill", fill);
    if (stroke) { c.setAttribute("stroke", "#111827"); c.setAttribute("stroke-width", "2"); }
    const t = document.createElementNS(NS_SVG, "title"); t.textContent = title; c.append(t);
    svg.append(c);
  };
  m.x.forEach((x, i) => dot(x, m.y[i], 3, colourOf(m.cluster_ids[i]), `${m.document_ids[i]} · ${m.cluster_ids[i]}`));
  picture.centroids.forEach((c) => dot(c.x, c.y, 8, colourOf(c.cluster_id), `${c.label} (${c.num_members})`, true));
  return svg;
}
async function viewCluster(view, id) {
  const path = `/v1/clusters/${encodeURIComponent(id)}`;
  const cluster = await api("GET", path);
  const run = h("button", { class: "primary", onclick: () => runCluster(id) }, "Run again");
  const parts = [head(cluster.cluster_name, `${cluster.algorithm} · ${cluster.status}`, run)];
  if (!TERMINAL.includes(cluster.status) && cluster.status !== "DRAFT") every(2000, () => route());
  if (!cluster.num_clusters) {
    view.replaceChildren(...parts, h("div", { class: "card empty" }, "No completed run yet."));
    return;
  }
  const groups = await api("GET", `${path}/groups`);
  const legend = h("ul", { class: "legend" }, ...groups.groups.map((g) => h("li", {},
    h("span", { class: "swatch", style: `background:${colourOf(g.cluster_id)}` }),
    h("b", {}, g.label), ` · ${g.member_count} · `, h("span", { class: "muted" }, (g.keywords || []).join(", ")))));
  const metrics = cluster.quality_metrics || {};
  const figures = h("div", { class: "muted" }, `silhouette ${metrics.silhouette_score?.toFixed?.(3) ?? "—"} · `,
    `Davies–Bouldin ${metrics.davies_bouldin_index?.toFixed?.(3) ?? "—"} · noise ${
      ((metrics.noise_ratio || 0) * 100).toFixed(1)}%`);
  if (cluster.cluster_type !== "vector") {
    view.replaceChildren(...parts, h("div", { class: "card" }, legend));
    return;
  }
  const picture = await api("GET", `${path}/visualization?compact=true&max_points=3000`);
  view.replaceChildren(...parts, h("div", { class: "card" }, figures, scatter(picture), legend));
}
