// The pipeline run page: draws the run's graph (dagre lays it out, we draw SVG at its
// coordinates) and, while the run is active, polls the page's JSON twin (?live=1: statuses
// only) to recolour step nodes, update the steps table and the run status in place.
"use strict";
(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const initial = JSON.parse(document.getElementById("run-data").textContent);
  const container = document.getElementById("graph");
  const table = document.getElementById("steps-table");
  window.headraceRunPage = { loadedAt: Date.now(), polls: 0 };

  const el = (name, attrs, parent) => {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (parent) parent.appendChild(node);
    return node;
  };
  const fit = (text, width) => {
    const max = Math.floor((width - 16) / 7);
    return text.length > max ? text.slice(0, Math.max(1, max - 1)) + "…" : text;
  };

  // -- the graph ---------------------------------------------------------------------------
  const stepNodes = new Map(); // node id -> {group, link, title, label}
  function draw(graph, steps) {
    if (!graph || !graph.steps.length) {
      container.textContent = "This run's graph has no steps.";
      return;
    }
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "TB", nodesep: 24, ranksep: 36, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    const width = (name, min, max) => Math.min(max, Math.max(min, name.length * 7 + 28));
    for (const s of graph.steps) g.setNode("s:" + s.id, { kind: "step", item: s, width: width(s.name, 110, 220), height: 38 });
    for (const d of graph.data) g.setNode("d:" + d.id, { kind: "data", item: d, width: width(d.name, 80, 180), height: 26 });
    const stepIds = new Set(graph.steps.map((s) => s.id));
    const key = (id) => (stepIds.has(id) ? "s:" : "d:") + id;
    for (const [from, to, kind] of graph.edges) {
      if (g.hasNode(key(from)) && g.hasNode(key(to))) g.setEdge(key(from), key(to), { kind });
    }
    dagre.layout(g);
    // The drawing's bounds: dagre's graph size covers the nodes, but a long edge's bends can
    // lie outside them (a dummy node left of the first column).
    let [minX, minY, maxX, maxY] = [0, 0, g.graph().width, g.graph().height];
    for (const e of g.edges()) {
      for (const p of g.edge(e).points) {
        minX = Math.min(minX, p.x - 12); maxX = Math.max(maxX, p.x + 12);
        minY = Math.min(minY, p.y - 12); maxY = Math.max(maxY, p.y + 12);
      }
    }
    const [w, h] = [Math.ceil(maxX - minX), Math.ceil(maxY - minY)];
    const svg = el("svg", {
      width: w, height: h,
      viewBox: `${Math.floor(minX)} ${Math.floor(minY)} ${w} ${h}`,
    });
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }, marker);
    const edges = el("g", { class: "edges" }, svg);
    for (const e of g.edges()) {
      const edge = g.edge(e);
      const d = edge.points.map((p, i) => (i ? "L" : "M") + p.x.toFixed(1) + "," + p.y.toFixed(1)).join(" ");
      el("path", { d, class: "edge edge-" + edge.kind, "marker-end": "url(#arrow)" }, edges);
    }
    const nodes = el("g", { class: "nodes" }, svg);
    for (const id of g.nodes()) {
      const n = g.node(id);
      const x = n.x - n.width / 2, y = n.y - n.height / 2;
      if (n.kind === "data") {
        const group = el("g", { class: "node data", "data-data-id": n.item.id, "data-kind": n.item.kind }, nodes);
        el("title", {}, group).textContent = `data ${n.item.name} (${n.item.kind})`;
        el("ellipse", { cx: n.x, cy: n.y, rx: n.width / 2, ry: n.height / 2 }, group);
        el("text", { x: n.x, y: n.y, "text-anchor": "middle", "dominant-baseline": "central" }, group).textContent = fit(n.item.name, n.width);
        continue;
      }
      const link = el("a", {}, nodes);
      const group = el("g", { class: "node step", "data-node-id": n.item.id, "data-status": "NotStarted", "data-step-type": n.item.type || "" }, link);
      const title = el("title", {}, group);
      el("rect", { x, y, width: n.width, height: n.height, rx: 6, ry: 6 }, group);
      const label = el("text", { x: n.x, y: n.y, "text-anchor": "middle", "dominant-baseline": "central" }, group);
      label.textContent = fit(n.item.name, n.width);
      stepNodes.set(n.item.id, { group, link, title, name: n.item.name, type: n.item.type });
    }
    container.replaceChildren(svg);
    paintNodes(steps);
  }

  function paintNodes(steps) {
    for (const s of steps) {
      const node = stepNodes.get(s.node_id);
      if (!node) continue;
      node.group.setAttribute("data-status", s.status);
      if (s.reused) node.group.setAttribute("data-reused", "true");
      node.title.textContent = `step ${s.name}: ${s.status}${s.reused ? " (reused)" : ""}${node.type ? ` (${node.type})` : ""}`;
      if (s.url && node.link.getAttribute("href") !== s.url) {
        node.link.setAttribute("href", s.url);
        node.link.setAttribute("aria-label", `step ${s.name}, ${s.status}`);
      }
    }
  }

  // -- the table and the run's facts -------------------------------------------------------
  const rows = new Map();
  for (const row of table.tBodies[0].rows) rows.set(row.dataset.nodeId, row);

  function paintRows(steps) {
    for (const s of steps) {
      const row = rows.get(s.node_id);
      if (!row) continue;
      const shown = s.reused ? "Reused" : s.status;
      if (row.dataset.status !== s.status || (s.reused && !row.dataset.reused)) {
        row.dataset.status = s.status;
        if (s.reused) row.dataset.reused = "true";
        const badge = row.cells[1].firstElementChild;
        badge.className = "status " + headrace.statusClass(shown);
        badge.textContent = s.status + (s.reused ? " (reused)" : "");
      }
      if (s.url && !row.cells[0].querySelector("a")) {
        const a = document.createElement("a");
        a.href = s.url;
        a.textContent = s.name;
        row.cells[0].replaceChildren(a);
      }
      setSeconds(row.cells[2], s.duration_seconds);
      row.cells[3].textContent = s.attempt;
    }
  }

  const setTime = (id, iso) => {
    const cell = document.getElementById(id);
    const shown = cell.querySelector("time");
    if (iso && shown && new Date(shown.getAttribute("datetime")).getTime() === new Date(iso).setMilliseconds(0)) return;
    cell.replaceChildren(headrace.format.timeElement(iso, "not yet"));
  };
  const setSeconds = (cell, seconds) => {
    cell.textContent = headrace.format.seconds(seconds);
    if (seconds === null || seconds === undefined) cell.removeAttribute("title");
    else cell.title = seconds.toLocaleString("en-US", { minimumFractionDigits: 3, maximumFractionDigits: 3 }) + " s";
  };
  function paintRun(data) {
    const run = data.run;
    const badge = document.getElementById("run-status");
    if (badge.dataset.status !== run.status) {
      badge.dataset.status = run.status;
      badge.className = "status " + headrace.statusClass(run.status);
      badge.textContent = run.status;
    }
    document.getElementById("step-counts").textContent =
      Object.entries(data.counts).map(([k, n]) => `${n} ${k}`).join(", ");
    setTime("run-started", run.started_at);
    setTime("run-ended", run.ended_at);
    setSeconds(document.getElementById("run-duration"), run.duration_seconds);
    const cancel = document.getElementById("cancel-form");
    if (cancel && !data.can_cancel) cancel.remove();
    if (run.error && !document.getElementById("run-error")) {
      // The run failed while we watched: show its error as the server renders it.
      const section = document.createElement("section");
      section.id = "run-error";
      const heading = document.createElement("h2");
      heading.textContent = "Error";
      const message = document.createElement("p");
      message.className = "error";
      message.setAttribute("role", "alert");
      message.textContent = run.error.message || JSON.stringify(run.error);
      section.append(heading, message);
      if (run.error.step_run_id) {
        const link = document.createElement("a");
        link.id = "failed-step-link";
        link.href = "/ui/steps/" + encodeURIComponent(run.error.step_run_id);
        link.textContent = `Open step ${run.error.step}: its logs and error`;
        const line = document.createElement("p");
        line.append(link);
        section.append(line);
      }
      if (run.error.stderr_tail) {
        const tail = document.createElement("pre");
        tail.className = "log";
        tail.textContent = run.error.stderr_tail;
        section.append(tail);
      }
      document.querySelector(".run-head").after(section);
    }
  }

  draw(initial.graph, initial.steps);
  if (initial.active) {
    headrace.poll(`/ui/runs/${encodeURIComponent(initial.id)}.json?live=1`, 1000, (data) => {
      window.headraceRunPage.polls += 1;
      paintNodes(data.steps);
      paintRows(data.steps);
      paintRun(data);
      if (!data.run.active) document.body.dataset.runEnded = "true";
      return data.run.active;
    });
  }
})();
