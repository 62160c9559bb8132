// The metrics pane (step page, pipeline run page): a chart per series (uPlot) and, while the
// run goes on, the pane kept current. Every 1.5 s it asks <pane's data-url>?after=<cursor>;
// when something was logged since, the answer carries the pane rendered again by the server
// (the same template as the page's) and the series: the pane's text is replaced, existing
// charts are kept and given their longer series, new ones drawn. After the run ends, one last
// read, then it stops (the pane's data-ended="true").
"use strict";
(() => {
  const pane = document.getElementById("metrics");
  if (!pane) return;
  const state = { polls: 0, redraws: 0 };
  window.headraceMetrics = state;
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim() || "#1d4ed8";
  const plots = new Map(); // series name -> { figure, plot }

  const chart = (figure, series) => {
    const width = Math.max(260, Math.min(720, figure.clientWidth || 720));
    const axis = { stroke: color("--muted"), grid: { stroke: color("--line") }, ticks: { stroke: color("--line") } };
    return new uPlot({
      width, height: 240,
      scales: { x: { time: false } },
      axes: [axis, axis],
      series: [
        { label: "step" },
        { label: series.name, stroke: color("--accent"), width: 2, points: { show: series.x.length < 60 },
          value: (u, v) => headrace.format.number(v) },
      ],
    }, [series.x, series.y], figure);
  };

  // Draw the pane's series: a chart already drawn moves into its new place with its new data.
  const drawCharts = () => {
    const source = pane.querySelector("script.metrics-series");
    for (const series of source ? JSON.parse(source.textContent) : []) {
      const placeholder = pane.querySelector(`figure.metric-chart[data-series-name="${CSS.escape(series.name)}"]`);
      if (!placeholder) continue;
      const drawn = plots.get(series.name);
      if (drawn) {
        placeholder.replaceWith(drawn.figure);
        drawn.plot.setData([series.x, series.y]);
        drawn.figure.dataset.points = series.x.length;
      } else {
        plots.set(series.name, { figure: placeholder, plot: chart(placeholder, series) });
      }
    }
  };
  drawCharts();
  if (pane.dataset.active !== "true") return;

  let cursor = Number(pane.dataset.cursor || 0);
  let last = false;
  const tick = async () => {
    let active = true;
    try {
      const response = await fetch(`${pane.dataset.url}?after=${cursor}`, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const answer = await response.json();
        active = answer.active;
        if (answer.html !== null) {
          cursor = answer.cursor;
          for (const { figure } of plots.values()) figure.remove(); // kept, put back by drawCharts
          pane.innerHTML = answer.html;
          drawCharts();
          headrace.format.localizeTimes(pane);
          state.redraws += 1;
        }
        pane.dataset.cursor = cursor;
      }
    } catch (err) { /* the server restarting: try again */ }
    state.polls += 1;
    if (active) setTimeout(tick, document.hidden ? 5000 : 1500);
    else if (!last) { last = true; setTimeout(tick, 300); } // what the run logged as it ended
    else pane.dataset.ended = "true";
  };
  setTimeout(tick, 1500);
})();
