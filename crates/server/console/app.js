// The console: hash routes, one view each. Every piece of farm data is
// shown with textContent (never as markup), and every call goes through
// api.js with the tenant's token.

import { api, token, setToken } from "/console/api.js";
import { renderSource } from "/console/lean.js";
import { stackedBars, line, meter } from "/console/chart.js";

const STATUSES = ["valid", "sorry", "lean_error", "repl_error", "timeout_error", "server_error", "dead"];
const STATUS_LABELS = {
  valid: "valid", sorry: "sorry", lean_error: "Lean error", repl_error: "REPL error",
  timeout_error: "timeout", server_error: "server error", dead: "dead",
};
const PROVE_KEY = "leanfarm.prove-jobs";
/** The overview's windows: seconds of history and bucket width. */
const WINDOWS = {
  "120": { window: 120, bucket: 2, label: "last 2 minutes" },
  "600": { window: 600, bucket: 10, label: "last 10 minutes" },
  "3600": { window: 3600, bucket: 60, label: "last hour" },
  "86400": { window: 86400, bucket: 1800, label: "last day" },
};

const view = document.getElementById("view");
const statusLine = document.getElementById("status");
let generation = 0; // bumped on every route change; stale loops stop.
let timers = [];

function el(name, attributes = {}, ...children) {
  const element = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function badge(status) {
  const key = status || "pending";
  return el("span", { class: `badge status-${key}`, "data-status": key, text: STATUS_LABELS[key] || key });
}

function when(millis) {
  return millis ? new Date(millis).toLocaleString() : "—";
}

function showError(error) {
  statusLine.textContent = error ? `${error.message}` : "";
  if (error?.status === 401) statusLine.textContent += " — enter a token above.";
}

function every(milliseconds, work) {
  const mine = generation;
  const run = async () => {
    if (mine !== generation) return;
    // A tab nobody looks at asks the farm nothing.
    if (document.hidden) {
      timers.push(setTimeout(run, milliseconds));
      return;
    }
    try {
      await work();
      showError(null);
    } catch (error) {
      if (mine === generation) showError(error);
    }
    if (mine === generation) timers.push(setTimeout(run, milliseconds));
  };
  run();
}

function swap(container, content) {
  container.replaceChildren(content);
}

function legend(series) {
  return el("ul", { class: "legend" },
    series.map((s) => el("li", {}, el("span", { class: `swatch series-${s.key}`, "aria-hidden": "true" }), s.label)));
}

// ---- Overview ----------------------------------------------------------

function overviewView() {
  const throughput = el("div", { class: "panel", id: "throughput" }, el("h3", { text: "Throughput" }));
  const mix = el("div", { class: "panel", id: "verdict-mix" }, el("h3", { text: "Verdict mix" }));
  const open = el("div", { class: "panel", id: "open-jobs" }, el("h3", { text: "Open jobs" }));
  const farm = el("div", { id: "farm" });
  const tenants = el("div", { id: "tenants" });
  const windowSelect = el("select", { id: "overview-window", name: "window" },
    Object.entries(WINDOWS).map(([value, w]) => el("option", { value, text: w.label })));
  windowSelect.value = sessionStorage.getItem("leanfarm.overview-window") || "120";
  windowSelect.addEventListener("change", () => sessionStorage.setItem("leanfarm.overview-window", windowSelect.value));
  view.replaceChildren(
    el("h2", { text: "Overview" }),
    el("div", { class: "toolbar" }, el("div", {}, el("label", { for: "overview-window", text: "Window " }), windowSelect)),
    el("p", { class: "hint", id: "overview-scope" }),
    el("div", { class: "grid" }, throughput, mix),
    el("div", { class: "grid" }, open),
    farm,
    tenants,
  );
  const charts = { throughput: el("div"), mix: el("div"), open: el("div") };
  throughput.append(charts.throughput);
  mix.append(charts.mix);
  open.append(charts.open);
  every(2000, async () => {
    const chosen = WINDOWS[windowSelect.value] || WINDOWS["120"];
    const data = await api(`/v1/overview?window=${chosen.window}&bucket=${chosen.bucket}`);
    const span = `${chosen.label}, ${data.bucket_seconds} s buckets; updates every 2 s.`;
    document.getElementById("overview-scope").textContent =
      data.scope === "operator" ? `Every tenant (operator token). ${span}` : `Tenant ${data.tenant}. ${span}`;
    const finishedTotal = data.finished.reduce((sum, bucket) => sum + Object.values(bucket.statuses).reduce((a, b) => a + b, 0), 0);
    const points = data.finished.map((bucket) => ({
      start: bucket.start,
      value: Object.values(bucket.statuses).reduce((a, b) => a + b, 0) / data.bucket_seconds,
    }));
    swap(charts.throughput, el("div", {},
      el("div", { class: "figures" },
        figure("checks finished", finishedTotal, "finished-total"),
        figure("checks/s, last bucket", points.length ? points[points.length - 1].value.toFixed(2) : "0", "rate-latest")),
      line({ points, title: "Checks finished per second", unit: "checks/s" })));
    const series = STATUSES.map((key) => ({ key, label: STATUS_LABELS[key] }));
    swap(charts.mix, el("div", {},
      stackedBars({
        buckets: data.finished.map((bucket) => ({ start: bucket.start, values: bucket.statuses })),
        series, title: "Verdicts per bucket by status", bucketSeconds: data.bucket_seconds,
      }),
      legend(series)));
    const limits = data.open_jobs.limits;
    swap(charts.open, el("div", {},
      el("div", { class: "figures" },
        figure("queued", data.open_jobs.queued, "open-queued"),
        figure("running", data.open_jobs.running, "open-running")),
      limits ? el("div", {},
        el("p", { class: "hint", text: "Against the tenant's limits:" }),
        el("div", {}, "open jobs ", meter({ value: data.open_jobs.queued + data.open_jobs.running, limit: limits.max_queued, label: "open jobs against max_queued" })),
        el("div", {}, "running ", meter({ value: data.open_jobs.running, limit: limits.max_running, label: "running jobs against max_running" })),
        el("p", { class: "hint", text: `rate limit ${limits.requests_per_second} requests/s` })) : null));
    swap(farm, data.farm ? farmPanels(data.farm) : el("p", { class: "hint", text: "The farm's queue and workers are shown to an operator token on this farm." }));
    swap(tenants, data.tenants ? tenantsPanel(data.tenants) : el("span"));
  });
}

function figure(label, value, id) {
  return el("div", { class: "figure" }, el("span", { class: "value", id, text: String(value) }), el("span", { class: "label", text: label }));
}

function farmPanels(farm) {
  const queue = el("div", { class: "panel", id: "queue" }, el("h3", { text: "Queue" }),
    el("div", { class: "figures" },
      figure("queued", farm.queue.queued, "farm-queued"),
      figure("running", farm.queue.running, "farm-running"),
      figure("oldest queued", farm.oldest_queued_age_seconds === undefined ? "—" : `${farm.oldest_queued_age_seconds.toFixed(1)} s`, "farm-oldest"),
      figure("done", farm.queue.done, "farm-done"),
      figure("dead", farm.queue.dead, "farm-dead")));
  const replica = farm.this_replica;
  const pool = el("div", { class: "panel", id: "pool" }, el("h3", { text: "REPL pool (this replica)" }));
  if (replica) {
    const rate = replica.pool.hit_rate;
    pool.append(
      el("div", { class: "figures" },
        figure("hit rate", rate === undefined ? "—" : `${(rate * 100).toFixed(0)} %`, "pool-hit-rate"),
        figure("hits / misses", `${replica.pool.hits} / ${replica.pool.misses}`, "pool-hits"),
        figure("REPLs busy / live", `${replica.pool.busy_repls} / ${replica.pool.live_repls}`, "pool-repls")),
      meter({ value: replica.pool.hits, limit: replica.pool.hits + replica.pool.misses, label: "pool hits of lookups" }));
  } else {
    pool.append(el("p", { class: "empty", text: "This replica runs no workers of its own." }));
  }
  const rows = farm.workers.map((worker) => {
    const local = replica && worker.toolchain === replica.toolchain && worker.project === replica.project;
    return el("tr", {},
      el("td", { class: "mono", text: worker.worker_id }),
      el("td", { text: worker.toolchain ?? "any" }),
      el("td", { text: worker.project ?? "any" }),
      el("td", { text: local ? String(replica.slots) : "—" }),
      el("td", { class: "mono", text: local ? (replica.warm_headers.map((h) => h || "(no imports)").join(", ") || "none") : "—" }),
      el("td", { class: "hide-narrow", text: when(worker.seen_at) }));
  });
  const workers = el("div", { class: "panel", id: "workers" }, el("h3", { text: `Workers (claimed in the last ${farm.worker_window_seconds} s)` }),
    el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ["worker", "toolchain", "project", "slots", "warm headers", "last claim"].map((h, i) => el("th", { scope: "col", class: i === 5 ? "hide-narrow" : null, text: h })))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 6, class: "empty", text: "No worker claimed work lately." }))))),
    el("p", { class: "hint", text: "Slots and warm headers are known for this replica's own workers." }));
  return el("div", {}, el("div", { class: "grid" }, queue, pool), workers);
}

function tenantsPanel(tenants) {
  return el("div", { class: "panel", id: "tenant-usage" }, el("h3", { text: "Tenants: open jobs against limits (operator)" }),
    el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ["tenant", "open / max queued", "running / max running", "rate"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, tenants.map((tenant) => el("tr", {},
        el("td", { class: "mono", text: tenant.tenant }),
        el("td", {}, meter({ value: tenant.queued + tenant.running, limit: tenant.limits?.max_queued, label: `${tenant.tenant} open jobs` })),
        el("td", {}, meter({ value: tenant.running, limit: tenant.limits?.max_running, label: `${tenant.tenant} running jobs` })),
        el("td", { text: tenant.limits ? `${tenant.limits.requests_per_second}/s` : "no limits" }))))))); 
}

// ---- Batches -------------------------------------------------------------

function batchesView() {
  const select = el("select", { id: "batch-filter", name: "status" },
    ["all", "open", "finished"].map((value) => el("option", { value, text: value })));
  const list = el("div", { id: "batch-list" });
  view.replaceChildren(el("h2", { text: "Batches" }),
    el("div", { class: "toolbar" }, el("div", {}, el("label", { for: "batch-filter", text: "Status " }), select)),
    list);
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  select.value = params.get("status") || "all";
  select.addEventListener("change", () => { location.hash = `#/batches?status=${select.value}`; });
  every(5000, async () => {
    const data = await api(`/v1/batches?status=${encodeURIComponent(select.value)}&limit=50`);
    if (!data.batches.length) return swap(list, el("p", { class: "empty", text: "No batches." }));
    swap(list, el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ["batch", "submitted", "progress", "verdicts"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, data.batches.map((batch) => el("tr", { "data-batch": batch.batch_id },
        el("td", {}, el("a", { href: `#/batch/${batch.batch_id}`, class: "mono", text: batch.batch_id.slice(0, 13) + "…", "aria-label": `batch ${batch.batch_id}` })),
        el("td", { text: when(batch.created_at) }),
        el("td", {}, el("progress", { max: batch.total, value: batch.finished, "aria-label": `batch ${batch.batch_id} progress` }),
          el("span", { class: "hint", text: ` ${batch.finished} of ${batch.total}${batch.all_final ? "" : " (open)"}` })),
        el("td", {}, Object.entries(batch.statuses).map(([status, count]) => el("span", {}, badge(status), ` ${count} `)))))))));
  });
}

function batchView(id) {
  const summary = el("div", { id: "batch-summary" });
  const checks = el("div", { id: "batch-checks" });
  view.replaceChildren(el("h2", {}, "Batch ", el("span", { class: "mono", text: id })), summary, checks);
  every(2000, async () => {
    const progress = await api(`/v1/batches/${encodeURIComponent(id)}`);
    swap(summary, el("div", { class: "panel" },
      el("progress", { max: progress.total, value: progress.finished, "aria-label": "batch progress" }),
      el("p", { text: `${progress.finished} of ${progress.total} final; queued ${progress.states.queued}, running ${progress.states.running}, dead ${progress.states.dead}` })));
    const page = await api(`/v1/checks?batch_id=${encodeURIComponent(id)}&limit=1000`);
    swap(checks, el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ["check", "custom id", "state", "verdict", "reason"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, page.results.map((check) => el("tr", {},
        el("td", {}, el("a", { href: `#/check/${check.id}`, class: "mono", text: check.id })),
        el("td", { text: check.custom_id ?? "" }),
        el("td", { text: check.state }),
        el("td", {}, check.verdict ? badge(check.verdict.status) : badge(check.state)),
        el("td", { text: check.verdict?.reason?.code ?? check.error ?? "" })))))));
  });
}

// ---- One check -----------------------------------------------------------

async function loadSource(id, attempts = 10) {
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      const input = await api(`/v1/checks/${encodeURIComponent(id)}/artifacts/input.json`);
      return input.code;
    } catch (error) {
      if (error.code !== "artifact_not_found") throw error;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
  return null;
}

function checkView(id) {
  const mine = generation;
  const head = el("div", { id: "check-head" }, el("p", { text: "Loading…" }));
  const source = el("div", { id: "check-source" });
  const details = el("div", { id: "check-details", class: "grid" });
  view.replaceChildren(el("h2", {}, "Check ", el("span", { class: "mono", text: id })), head, source, details);
  const submitted = sessionStorage.getItem(`leanfarm.source.${id}`);
  (async () => {
    try {
      let check = await api(`/v1/checks/${encodeURIComponent(id)}`);
      // Shown only once the farm has confirmed this token may read the check.
      if (submitted !== null && mine === generation) source.replaceChildren(renderSource(submitted, []));
      while (mine === generation && (check.state === "queued" || check.state === "running")) {
        swap(head, el("p", {}, badge(check.state), " waiting for the verdict…"));
        check = await api(`/v1/checks/${encodeURIComponent(id)}?wait=20`);
      }
      if (mine !== generation) return;
      renderCheck(check, head, details);
      const code = submitted ?? (check.state === "done" ? await loadSource(id) : null);
      if (mine !== generation) return;
      if (code !== null) source.replaceChildren(el("h3", { text: "Source and messages" }), renderSource(code, check.verdict?.messages || []));
      else source.replaceChildren(el("p", { class: "empty", text: "The source is not available yet." }));
      if (check.attestation) {
        const status = await api(`/v1/checks/${encodeURIComponent(id)}/attestation`);
        if (mine === generation) document.getElementById("attestation").replaceChildren(attestationFacts(status, id));
      }
    } catch (error) {
      if (mine === generation) showError(error);
    }
  })();
}

function renderCheck(check, head, details) {
  const verdict = check.verdict;
  head.replaceChildren(el("div", { class: "panel", id: "verdict" },
    el("p", {}, verdict ? badge(verdict.status) : badge(check.state), " ",
      el("span", { id: "verdict-status", "data-status": verdict?.status ?? check.state, text: verdict ? `verdict: ${STATUS_LABELS[verdict.status] || verdict.status}` : check.state }),
      check.batch_id ? el("span", {}, " · batch ", el("a", { href: `#/batch/${check.batch_id}`, class: "mono", text: check.batch_id })) : null),
    verdict?.reason ? el("p", { id: "verdict-reason" }, el("strong", { text: verdict.reason.code }), `: ${verdict.reason.message}`) : null,
    check.error ? el("p", { text: check.error }) : null));
  const axioms = verdict?.axioms ? Object.entries(verdict.axioms) : [];
  details.replaceChildren(
    el("div", { class: "panel", id: "axioms" }, el("h3", { text: "Axioms" }),
      axioms.length ? el("dl", { class: "facts" }, axioms.map(([name, list]) => [el("dt", { class: "mono", text: name }), el("dd", { class: "mono", text: list.length ? list.join(", ") : "none" })]))
        : el("p", { class: "empty", text: "No declarations audited." })),
    el("div", { class: "panel" }, el("h3", { text: "Run" }),
      el("dl", { class: "facts" },
        el("dt", { text: "toolchain" }), el("dd", { text: verdict ? `${verdict.toolchain} / ${verdict.project}` : "—" }),
        el("dt", { text: "timings" }), el("dd", { text: verdict?.timings ? Object.entries(verdict.timings).map(([k, v]) => `${k} ${Number(v).toFixed(1)}`).join(", ") : "—" }),
        el("dt", { text: "REPL reused" }), el("dd", { text: verdict ? String(verdict.repl_reused) : "—" }),
        el("dt", { text: "attempts" }), el("dd", { text: String(check.attempts) }),
        el("dt", { text: "finished" }), el("dd", { text: when(check.finished_at) }))),
    el("div", { class: "panel", id: "attestation" }, el("h3", { text: "Attestation" }),
      el("p", { class: "empty", text: check.attestation ? "Verifying…" : "This verdict is not signed." })));
}

function attestationFacts(status, id) {
  const verified = status.verified === true;
  return el("div", {},
    el("h3", { text: "Attestation" }),
    el("p", {}, el("span", { class: `badge ${verified ? "ok" : "bad"}`, id: "attestation-verified", text: verified ? "verifies" : `fails: ${status.failed_check}` }),
      verified ? " against the farm's published keys, and matches this check." : ` ${status.message}`),
    el("dl", { class: "facts" },
      el("dt", { text: "key" }), el("dd", { class: "mono", text: status.key_id ?? "—" }),
      el("dt", { text: "worker" }), el("dd", { class: "mono", text: status.worker_id ?? "—" }),
      el("dt", { text: "signed" }), el("dd", { text: status.signed_at ? when(status.signed_at * 1000) : "—" })),
    el("p", { class: "hint" }, "Offline: ", el("code", { text: `leanfarm verify check.json --keys ${location.origin}` }), ` (check.json from GET /v1/checks/${id}).`));
}

// ---- The check form ------------------------------------------------------

const POLICIES = {
  standard: { allowed_axioms: ["propext", "Classical.choice", "Quot.sound"], allow_native_decide: false },
  constructive: { allowed_axioms: ["propext", "Quot.sound"], allow_native_decide: false },
  none: { allowed_axioms: [], allow_native_decide: false },
  native: { allowed_axioms: ["propext", "Classical.choice", "Quot.sound"], allow_native_decide: true },
};

function newCheckView() {
  const form = el("form", { class: "stack", id: "check-form", novalidate: true },
    el("div", {}, el("label", { for: "snippet", text: "Lean snippet" }),
      el("textarea", { id: "snippet", name: "snippet", required: true, spellcheck: "false", "aria-describedby": "snippet-hint" },
        "theorem add_zero' (n : Nat) : n + 0 = n := by\n  simp\n"),
      el("p", { class: "hint", id: "snippet-hint", text: "One snippet: imports, then declarations." })),
    el("fieldset", {}, el("legend", { text: "Policy" }),
      el("div", {}, el("label", { for: "policy", text: "Preset" }),
        el("select", { id: "policy", name: "policy" },
          el("option", { value: "standard", text: "standard axioms (propext, Classical.choice, Quot.sound)" }),
          el("option", { value: "constructive", text: "no Classical.choice" }),
          el("option", { value: "none", text: "no axioms at all" }),
          el("option", { value: "native", text: "standard axioms, native_decide allowed" }))),
      el("div", {}, el("label", { for: "pinned", text: "Pinned statement (optional)" }),
        el("input", { id: "pinned", name: "pinned", type: "text", placeholder: "theorem t (n : Nat) : n + 0 = n", "aria-describedby": "pinned-hint" }),
        el("p", { class: "hint", id: "pinned-hint", text: "When given, the snippet must prove exactly this theorem." })),
      el("div", {}, el("label", { for: "timeout", text: "Timeout (seconds)" }),
        el("input", { id: "timeout", name: "timeout", type: "number", min: "1", max: "600", value: "60" }))),
    el("div", {}, el("button", { type: "submit", class: "primary", id: "submit-check", text: "Check" })));
  view.replaceChildren(el("h2", { text: "Check a snippet" }), form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const code = form.snippet.value;
    if (!code.trim()) return showError(new Error("the snippet is empty"));
    const policy = { ...POLICIES[form.policy.value] };
    const pinned = form.pinned.value.trim();
    if (pinned) {
      const name = pinned.match(/^\s*(?:theorem|lemma)\s+([^\s(:{[]+)/)?.[1];
      policy.pinned = { name: name || "", statement: pinned };
    }
    try {
      const answer = await api("/v1/checks", { method: "POST", body: { snippets: [{ code }], timeout: Number(form.timeout.value) || 60, policy } });
      const id = answer.results[0].id;
      sessionStorage.setItem(`leanfarm.source.${id}`, code);
      location.hash = `#/check/${id}`;
    } catch (error) {
      showError(error);
    }
  });
}

// ---- Prove jobs ----------------------------------------------------------

function rememberedProveJobs() {
  try { return JSON.parse(sessionStorage.getItem(PROVE_KEY) || "[]"); } catch { return []; }
}

function proveView() {
  const form = el("form", { class: "stack", id: "prove-form" },
    el("div", {}, el("label", { for: "statement", text: "Statement" }),
      el("input", { id: "statement", name: "statement", type: "text", required: true, value: "theorem t (a b : Nat) : a + b = b + a" })),
    el("div", {}, el("label", { for: "route", text: "Model route" }), el("input", { id: "route", name: "route", type: "text", value: "dummy" })),
    el("div", {}, el("label", { for: "strategy", text: "Strategy" }),
      el("select", { id: "strategy", name: "strategy" }, el("option", { value: "sample", text: "sample" }), el("option", { value: "refine", text: "refine" }))),
    el("div", {}, el("label", { for: "per-round", text: "Candidates per round" }), el("input", { id: "per-round", name: "perRound", type: "number", min: "1", max: "64", value: "3" })),
    el("div", {}, el("label", { for: "rounds", text: "Rounds" }), el("input", { id: "rounds", name: "rounds", type: "number", min: "1", max: "100", value: "4" })),
    el("div", {}, el("label", { for: "candidates", text: "Candidate budget" }), el("input", { id: "candidates", name: "candidates", type: "number", min: "1", max: "1000", value: "12" })),
    el("div", {}, el("button", { type: "submit", class: "primary", text: "Start proof search" })));
  const open = el("form", { class: "toolbar", id: "prove-open" },
    el("div", {}, el("label", { for: "prove-id", text: "Open a prove job by id " }), el("input", { id: "prove-id", name: "id", type: "text", required: true })),
    el("button", { type: "submit", text: "Open" }));
  const jobs = rememberedProveJobs();
  view.replaceChildren(el("h2", { text: "Prove jobs" }), open,
    el("h3", { text: "Started in this browser session" }),
    jobs.length ? el("ul", {}, jobs.map((id) => el("li", {}, el("a", { href: `#/prove/${id}`, class: "mono", text: id })))) : el("p", { class: "empty", text: "None yet." }),
    el("h3", { text: "Start one" }), form);
  open.addEventListener("submit", (event) => { event.preventDefault(); location.hash = `#/prove/${open.id.value.trim()}`; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const job = await api("/v1/prove", { method: "POST", body: {
        statement: form.statement.value, route: form.route.value,
        strategy: { kind: form.strategy.value, n: Number(form.perRound.value) || 3, rounds: Number(form.rounds.value) || 4 },
        budget: { candidates: Number(form.candidates.value) || 8 },
      } });
      sessionStorage.setItem(PROVE_KEY, JSON.stringify([job.id, ...jobs].slice(0, 50)));
      location.hash = `#/prove/${job.id}`;
    } catch (error) {
      showError(error);
    }
  });
}

function proveJobView(id) {
  const mine = generation;
  const head = el("div", { id: "prove-head" });
  const budget = el("div", { class: "panel", id: "prove-budget" });
  const timeline = el("div", { id: "prove-timeline" });
  const proof = el("div", { id: "prove-proof" });
  view.replaceChildren(el("h2", {}, "Prove job ", el("span", { class: "mono", text: id })), head, budget, el("h3", { text: "Rounds and candidates" }), timeline, proof);
  (async () => {
    try {
      let job = await api(`/v1/prove/${encodeURIComponent(id)}`);
      for (;;) {
        if (mine !== generation) return;
        renderProve(job, head, budget, timeline, proof);
        if (job.state !== "running") return;
        job = await api(`/v1/prove/${encodeURIComponent(id)}?wait=5`);
      }
    } catch (error) {
      if (mine === generation) showError(error);
    }
  })();
}

function renderProve(job, head, budget, timeline, proof) {
  head.replaceChildren(el("p", {}, el("span", { class: `badge status-${job.state === "proved" ? "valid" : job.state === "running" ? "running" : "lean_error"}`, id: "prove-state", text: job.state }),
    job.reason ? ` ${job.reason}` : ""));
  const usage = job.usage || {};
  const limits = job.budget || {};
  budget.replaceChildren(el("h3", { text: "Budget use" }),
    ...["candidates", "tokens", "cpu_seconds", "wall_seconds"].map((key) => el("div", {}, el("span", { text: `${key} ` }),
      meter({ value: Math.round((usage[key] || 0) * 100) / 100, limit: limits[key], label: `${key} used of budget` }))));
  const rounds = new Map();
  for (const attempt of job.attempts || []) {
    if (!rounds.has(attempt.round)) rounds.set(attempt.round, []);
    rounds.get(attempt.round).push(attempt);
  }
  timeline.replaceChildren(el("ol", { class: "timeline", "aria-label": "rounds" },
    [...rounds.entries()].sort((a, b) => a[0] - b[0]).map(([round, attempts]) => el("li", { class: "round" },
      el("strong", { text: `Round ${round}` }),
      el("ul", { class: "candidates" }, attempts.sort((a, b) => a.candidate - b.candidate).map((attempt) => el("li", { class: "candidate" },
        el("div", {}, `#${attempt.candidate} `, attempt.verdict ? badge(attempt.verdict.status) : badge("pending")),
        el("div", { class: "hint", text: `${attempt.tokens ?? 0} tokens · ${attempt.time_ms ?? 0} ms` }),
        attempt.verdict?.reason ? el("div", { class: "hint", text: attempt.verdict.reason.code }) : null,
        attempt.check_id ? el("a", { href: `#/check/${attempt.check_id}`, text: "source and messages" }) : null)))))));
  if (!rounds.size) timeline.replaceChildren(el("p", { class: "empty", text: "No candidate yet." }));
  proof.replaceChildren(...(job.proof ? [el("h3", { text: "Final proof" }), renderSource(job.proof, [])] : []));
}

// ---- Routing and the token -----------------------------------------------

function route() {
  generation++;
  timers.forEach(clearTimeout);
  timers = [];
  showError(null);
  const [path] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const name = parts[0] || "overview";
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === name || (name === "batch" && link.dataset.nav === "batches") || (name === "check" && link.dataset.nav === "new")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (name === "batches") batchesView();
  else if (name === "batch" && parts[1]) batchView(parts[1]);
  else if (name === "check" && parts[1]) checkView(parts[1]);
  else if (name === "new") newCheckView();
  else if (name === "prove" && parts[1]) proveJobView(parts[1]);
  else if (name === "prove") proveView();
  else overviewView();
  view.focus({ preventScroll: true });
}

function showTokenState() {
  document.getElementById("token-state").textContent = token() ? "token set for this tab" : "no token";
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token-input");
  setToken(input.value.trim());
  input.value = "";
  showTokenState();
  route();
});
document.getElementById("token-forget").addEventListener("click", () => {
  setToken("");
  showTokenState();
  route();
});
// The skip link moves the focus to the view; it must not become a route.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  view.focus();
});
window.addEventListener("hashchange", route);
showTokenState();
route();
