// headrace portal: numbers, sizes, durations and times for people, by the same rules as the
// server's Jinja filters (server/portal/formatting.py: the rules are written there; a browser
// test compares both). Pages use it for what they update live.
"use strict";
window.headraceFormat = (() => {
  const isNumber = (v) => typeof v === "number";
  const digits = (v) => Math.floor(Math.log10(Math.abs(v))) + 1;
  // `v` to `decimals` places, halves away from zero, trailing zeros dropped.
  const fixed = (v, decimals, separators = true) => {
    const text = v.toLocaleString("en-US", {
      minimumFractionDigits: 0, maximumFractionDigits: decimals, useGrouping: separators,
    });
    return text === "-0" ? "0" : text;
  };
  const scientific = (v) => {
    const [mantissa, exponent] = v.toExponential(3).split("e");
    return fixed(Number(mantissa), 3, false) + "e" + Number(exponent);
  };
  const threeDigits = (v) => fixed(v, v ? Math.max(0, 3 - digits(v)) : 0, false);

  function number(v) {
    if (!isNumber(v)) return v === null || v === undefined ? "" : String(v);
    if (Number.isNaN(v)) return "NaN";
    if (!Number.isFinite(v)) return v > 0 ? "∞" : "-∞";
    if (v === 0) return "0";
    if (Math.abs(v) >= 1e15 || Math.abs(v) < 1e-4) return scientific(v);
    if (Number.isInteger(v)) return fixed(v, 0);
    return fixed(v, Math.max(0, 4 - digits(v)));
  }

  function count(v) {
    if (!isNumber(v)) return v === null || v === undefined ? "" : String(v);
    if (Math.abs(v) < 1e6) return number(v);
    for (const [unit, letter] of [[1e6, "M"], [1e9, "B"], [1e12, "T"]]) {
      const text = threeDigits(v / unit);
      if (Math.abs(Number(text)) < 1000 || letter === "T") return text + letter;
    }
    return String(v);
  }

  function size(v) {
    if (!isNumber(v)) return v === null || v === undefined ? "" : String(v);
    if (Math.abs(v) < 1000) return Math.trunc(v) + " B";
    for (const [unit, name] of [[1e3, "kB"], [1e6, "MB"], [1e9, "GB"], [1e12, "TB"], [1e15, "PB"]]) {
      const text = threeDigits(v / unit);
      if (Math.abs(Number(text)) < 1000 || name === "PB") return text + " " + name;
    }
    return String(v);
  }

  function seconds(v) {
    if (!isNumber(v) || Number.isNaN(v)) return "";
    const s = Math.max(0, v);
    if (s < 1) return fixed(s, 2) + " s";
    if (s < 60) return fixed(s, 1) + " s";
    const whole = Math.trunc(s);
    if (whole < 3600) return `${Math.trunc(whole / 60)} min ${whole % 60} s`;
    if (whole < 86400) return `${Math.trunc(whole / 3600)} h ${Math.trunc((whole % 3600) / 60)} min`;
    return `${Math.trunc(whole / 86400)} d ${Math.trunc((whole % 86400) / 3600)} h`;
  }

  // -- times -------------------------------------------------------------------------------
  const pad = (n) => String(n).padStart(2, "0");
  const stamp = (y, mo, d, h, mi, s) => `${y}-${pad(mo)}-${pad(d)} ${pad(h)}:${pad(mi)}:${pad(s)}`;
  // The short name of the browser's zone at `date` ("EST", "CET"; "GMT+5:30" where the
  // zone has no common abbreviation). en-US names American zones, en-GB European ones.
  const zoneName = (date) => {
    const named = (locale) => new Intl.DateTimeFormat(locale, { timeZoneName: "short" })
      .formatToParts(date).find((p) => p.type === "timeZoneName").value;
    const us = named("en-US");
    if (!/^GMT[+\-\u2212]/.test(us)) return us;
    const gb = named("en-GB");
    return /^(GMT|UTC)[+\-\u2212]/.test(gb) ? us : gb;
  };
  // `precise`: with milliseconds (a log line's time).
  const millis = (ms, precise) => (precise ? "." + String(ms).padStart(3, "0") : "");
  const utcText = (date, precise) => stamp(date.getUTCFullYear(), date.getUTCMonth() + 1,
    date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds())
    + millis(date.getUTCMilliseconds(), precise) + " UTC";
  const localText = (date, precise) => stamp(date.getFullYear(), date.getMonth() + 1,
    date.getDate(), date.getHours(), date.getMinutes(), date.getSeconds())
    + millis(date.getMilliseconds(), precise) + " " + zoneName(date);

  // Show every <time datetime="...Z"> under `root` in the browser's zone, the UTC text in its
  // title; an instant given to the millisecond (`.123Z`: a log line's) keeps them.
  function localizeTimes(root) {
    for (const el of (root || document).querySelectorAll("time[datetime]")) {
      const iso = el.getAttribute("datetime");
      const date = new Date(iso);
      if (Number.isNaN(date.getTime())) continue;
      const precise = /\.\d{3}Z$/.test(iso);
      el.textContent = localText(date, precise);
      el.title = utcText(date, precise);
      el.dataset.local = "true";
    }
  }

  // A <time> element for an ISO instant (null: `empty` as text), in the browser's zone.
  function timeElement(iso, empty) {
    if (!iso) return document.createTextNode(empty || "");
    const date = new Date(iso);
    const el = document.createElement("time");
    el.setAttribute("datetime", date.toISOString().replace(/\.\d{3}Z$/, "Z"));
    el.textContent = localText(date);
    el.title = utcText(date);
    el.dataset.local = "true";
    return el;
  }

  return { number, count, size, seconds, utcText, localText, localizeTimes, timeElement };
})();
