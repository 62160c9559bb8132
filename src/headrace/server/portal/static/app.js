// headrace portal: the few helpers every page uses. Pages with live parts poll their own
// JSON twin (the same URL with .json) and redraw what changed.
"use strict";
window.headrace = {
  // Fetch `url` as JSON every `ms` milliseconds and call `onData(data)`; onData returns
  // false to stop (a finished run). Pauses while the tab is hidden.
  poll(url, ms, onData) {
    let timer = null;
    const tick = async () => {
      timer = null;
      if (document.hidden) { timer = setTimeout(tick, ms); return; }
      let keepGoing = true;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        if (response.ok) keepGoing = onData(await response.json()) !== false;
      } catch (err) { /* the server restarting: try again */ }
      if (keepGoing) timer = setTimeout(tick, ms);
    };
    timer = setTimeout(tick, ms);
    return () => timer && clearTimeout(timer);
  },
  statusClass(status) { return "status-" + String(status || "unknown").toLowerCase(); },
  duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + Math.floor(seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  },
};
