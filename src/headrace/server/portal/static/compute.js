// Compute targets: poll the page's JSON twin and redraw each target's status, count and
// running steps (a target created since the page loaded shows up on the next reload).
"use strict";
(() => {
  const cell = (tag, text, className) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    node.textContent = text;
    return node;
  };
  const link = (href, text, code) => {
    const a = document.createElement("a");
    a.href = href;
    a.append(code ? cell("code", text) : document.createTextNode(text));
    return a;
  };
  const stepRow = (step) => {
    const row = document.createElement("tr");
    row.dataset.stepId = step.id;
    const name = document.createElement("td");
    name.append(link(step.url, step.name), " ", cell("code", step.id.slice(0, 8), "muted"));
    const run = document.createElement("td");
    run.append(link(step.run_url, step.pipeline_run_id.slice(0, 8), true));
    const started = document.createElement("td");
    started.append(headrace.format.timeElement(step.started_at));
    row.append(name, run, started);
    return row;
  };
  headrace.poll(location.pathname + ".json", 3000, (data) => {
    for (const target of data.targets) {
      const row = document.querySelector(`tr[data-target="${CSS.escape(target.name)}"]`);
      const section = document.querySelector(`section[data-target="${CSS.escape(target.name)}"]`);
      if (!row || !section) continue;
      row.querySelector(".target-status").textContent = target.status;
      row.querySelector(".running-count").textContent = target.running;
      section.querySelector(".running-count").textContent = target.running;
      section.querySelector("tbody").replaceChildren(...target.running_steps.map(stepRow));
      section.querySelector(".running-steps").hidden = target.running === 0;
      section.querySelector(".nothing").hidden = target.running !== 0;
    }
  });
})();
