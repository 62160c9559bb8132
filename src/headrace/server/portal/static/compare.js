// Compare runs: one uPlot chart per metric series, the runs' series overlaid (uPlot.join
// aligns their x values), a legend naming the runs. The data is the page's own JSON.
"use strict";
(() => {
  const source = document.getElementById("series-data");
  if (!source || typeof uPlot === "undefined") return;
  const charts = JSON.parse(source.textContent);
  const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
  const palette = dark
    ? ["#7aa7ff", "#fbbf24", "#4ade80", "#f87171", "#c084fc", "#2dd4bf", "#f472b6", "#a3e635"]
    : ["#1d4ed8", "#b45309", "#15803d", "#b91c1c", "#7e22ce", "#0f766e", "#be185d", "#4d7c0f"];
  const axisColor = dark ? "#9aa5b1" : "#5b6470";
  const gridColor = dark ? "#2d3640" : "#e5e8ec";
  const figures = document.querySelectorAll("figure.chart");
  const plots = [];
  const widthOf = (figure) => Math.max(240, figure.clientWidth - 18);
  charts.forEach((chart, index) => {
    const figure = figures[index];
    const data = uPlot.join(chart.runs.map((run) => [run.x, run.y]));
    const axis = { stroke: axisColor, grid: { stroke: gridColor }, ticks: { stroke: gridColor } };
    const options = {
      width: widthOf(figure),
      height: 240,
      scales: { x: { time: false } },
      axes: [{ ...axis, label: "step" }, { ...axis }],
      series: [
        { label: "step" },
        ...chart.runs.map((run, i) => ({
          label: run.label,
          stroke: palette[i % palette.length],
          width: 2,
          dash: i >= palette.length ? [6, 4] : undefined,
          spanGaps: true,
          points: { show: run.x.length < 60 },
          value: (u, v) => headrace.format.number(v),
        })),
      ],
    };
    plots.push([figure, new uPlot(options, data, figure)]);
  });
  let pending = null;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => {
      for (const [figure, plot] of plots) plot.setSize({ width: widthOf(figure), height: 240 });
    }, 150);
  });
})();
