// The step run page: stdout / stderr tailing live while the step is active (the page polls
// /ui/steps/<id>/log/<stream>?offset=N for the new text) and a ParallelRunStep's progress.
// The metrics pane is metrics.js's.
"use strict";
(() => {
  const initial = JSON.parse(document.getElementById("step-data").textContent);
  window.headraceStepPage = { loadedAt: Date.now(), polls: 0 };

  // -- live batch-scoring progress (a ParallelRunStep): the page's JSON twin every 2 s ----
  const refreshProgress = async () => {
    try {
      const response = await fetch(`/ui/steps/${encodeURIComponent(initial.id)}.json`, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const p = (await response.json()).parallel;
      if (!p) return;
      const bar = document.getElementById("parallel-bar");
      bar.max = p.items.total || 1;
      bar.value = p.items.done + p.items.failed;
      document.getElementById("parallel-percent").textContent = Math.round(p.percent) + "%";
      const counts = {
        "items-done": p.items.done, "items-failed": p.items.failed, "items-remaining": p.items.remaining,
        "batches-done": p.mini_batches.done, "batches-failed": p.mini_batches.failed, "batches-remaining": p.mini_batches.remaining,
      };
      for (const [key, value] of Object.entries(counts)) {
        document.querySelector(`[data-count="${key}"]`).textContent = headrace.format.count(value);
      }
      const body = document.querySelector("#parallel-workers tbody");
      body.replaceChildren(...p.workers.map((w) => {
        const row = document.createElement("tr");
        const count = headrace.format.count;
        for (const value of [w.worker, w.node, count(w.batches_done), count(w.batches_failed), w.current_batch === "" ? "-" : w.current_batch]) {
          const cell = document.createElement("td");
          cell.textContent = value;
          row.append(cell);
        }
        // The heartbeat is a UTC "YYYY-MM-DD HH:MM:SS": shown in the browser's zone.
        const heartbeat = document.createElement("td");
        heartbeat.append(headrace.format.timeElement(w.last_heartbeat ? w.last_heartbeat.replace(" ", "T") + "Z" : null));
        row.append(heartbeat);
        return row;
      }));
      window.headraceStepPage.progressPolls = (window.headraceStepPage.progressPolls || 0) + 1;
    } catch (err) { /* the server restarting: try again */ }
  };
  if (initial.active && initial.parallel) {
    const progressTick = async () => {
      const ended = document.body.dataset.stepEnded === "true";  // then one last read
      await refreshProgress();
      if (!ended) setTimeout(progressTick, 2000);
    };
    setTimeout(progressTick, 2000);
  }

  // -- live logs ---------------------------------------------------------------------------
  if (!initial.active) return;
  const logs = ["log", "stdout", "stderr"].map((stream) => ({ stream, pre: document.getElementById("log-" + stream) }));
  // A line of the combined log (`<time> <stream> <text>`), as the page renders it.
  const combinedLine = (line) => {
    const span = document.createElement("span");
    const m = /^(\S{24}) (stdout|stderr|headrace) (.*)$/.exec(line);
    span.className = "ln ln-" + (m ? m[2] : "other");
    if (m) {
      const time = document.createElement("time");
      time.setAttribute("datetime", m[1]);
      time.textContent = m[1];
      const stream = document.createElement("b");
      stream.textContent = m[2];
      span.append(time, " ", stream, " " + m[3]);
      headrace.format.localizeTimes(span);  // in the browser's zone, as on load
    } else span.textContent = line;
    return span;
  };
  // The step's facts (times, why, command) from the page's twin: read when its status changes.
  const refreshFacts = async () => {
    try {
      const response = await fetch(`/ui/steps/${encodeURIComponent(initial.id)}.json`, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const step = (await response.json()).step;
      document.getElementById("step-started").replaceChildren(headrace.format.timeElement(step.started_at, "not yet"));
      document.getElementById("step-ended").replaceChildren(headrace.format.timeElement(step.ended_at, "not yet"));
      document.getElementById("step-duration").textContent = headrace.format.seconds(step.duration_seconds);
      const reason = document.getElementById("run-reason");
      if (!step.reused && step.run_reason.summary && reason.textContent.trim() === "not decided yet") {
        reason.textContent = step.run_reason.summary;
      }
      const notYet = document.getElementById("command-not-yet");
      if (notYet && step.command_line) {
        const pre = document.createElement("pre");
        pre.className = "command";
        pre.id = "command-line";
        pre.textContent = step.command_line;
        notYet.replaceWith(pre);
      }
      window.headraceStepPage.factReads = (window.headraceStepPage.factReads || 0) + 1;
    } catch (err) { /* the server restarting: the next change tries again */ }
  };
  const partial = {};  // a line of the combined log not ended yet
  const badge = document.getElementById("step-status");
  const base = `/ui/steps/${encodeURIComponent(initial.id)}/log/`;
  let timer = null;
  const tick = async () => {
    let active = true;
    try {
      for (const log of logs) {
        const offset = Number(log.pre.dataset.offset || 0);
        const response = await fetch(`${base}${log.stream}?offset=${offset}`, { headers: { Accept: "application/json" } });
        if (!response.ok) continue;
        const chunk = await response.json();
        const atBottom = log.pre.scrollTop + log.pre.clientHeight >= log.pre.scrollHeight - 4;
        if (log.stream === "log" && chunk.why && !document.getElementById("log-why")) {
          // Why the step runs: the first line of the pane, once the agent has said it.
          const why = document.createElement("span");
          why.className = "ln ln-why";
          why.id = "log-why";
          why.textContent = "why it ran: " + chunk.why;
          log.pre.prepend(why, "\n");
        }
        if (chunk.text && log.stream === "log") {
          const lines = ((partial.log || "") + chunk.text).split("\n");
          partial.log = lines.pop();
          for (const line of lines) log.pre.append(combinedLine(line), "\n");
        } else if (chunk.text) {
          log.pre.append(document.createTextNode(chunk.text));
        }
        if (atBottom) log.pre.scrollTop = log.pre.scrollHeight;
        log.pre.dataset.offset = chunk.offset;
        active = chunk.active;
        if (badge.dataset.status !== chunk.status) {
          badge.dataset.status = chunk.status;
          badge.className = "status " + headrace.statusClass(chunk.status);
          badge.textContent = chunk.status;
          refreshFacts();
        }
      }
    } catch (err) { /* the server restarting: try again */ }
    window.headraceStepPage.polls += 1;
    // Facts the page was loaded without (a step planned, not started yet): every 3 s till set.
    if (document.getElementById("command-not-yet") && window.headraceStepPage.polls % 3 === 0) refreshFacts();
    // One more read after the step ends, so its last lines show; then stop.
    if (active) timer = setTimeout(tick, 1000);
    else if (timer !== "last") { timer = "last"; setTimeout(tick, 300); }
    else {
      document.body.dataset.stepEnded = "true";
      const note = document.createElement("p");
      note.setAttribute("role", "status");
      note.innerHTML = 'The step has ended. <a href="">Reload the page</a> for its outputs and files.';
      badge.parentElement.after(note);
    }
  };
  timer = setTimeout(tick, 1000);
})();
