// headrace portal: the few helpers every page uses. Pages with live parts poll their own
// JSON twin (the same URL with .json) and redraw what changed. Formatting (numbers, sizes,
// durations, times) is format.js's; on load every <time> is shown in the browser's zone.
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
  format: window.headraceFormat,
  duration(seconds) { return window.headraceFormat.seconds(seconds); },
};
window.headraceFormat.localizeTimes(document);
