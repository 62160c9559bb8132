// The runs list: "Compare selected" goes to /ui/compare?runs=ID,ID (without JavaScript the
// form still submits, as runs=ID&runs=ID); the filter form sends its chosen columns as one
// comma-separated `cols` (without JavaScript, as cols=A&cols=B: the server takes both).
"use strict";
(() => {
  const filters = document.querySelector("form.filters");
  if (filters) {
    filters.addEventListener("submit", () => {
      const fields = [...filters.querySelectorAll('[name="cols"]')];
      const keys = fields
        .filter((field) => field.type !== "checkbox" || field.checked)
        .flatMap((field) => field.value.split(","))
        .map((key) => key.trim())
        .filter((key, i, all) => key && all.indexOf(key) === i);
      fields.forEach((field) => { field.disabled = true; });
      // Empty fields stay out of the address (it is what gets bookmarked and shared).
      filters.querySelectorAll("input[name], select[name]").forEach((field) => {
        if (field.type !== "checkbox" && field.value === "") field.disabled = true;
      });
      if (keys.length) {
        const joined = document.createElement("input");
        joined.type = "hidden";
        joined.name = "cols";
        joined.value = keys.join(",");
        filters.appendChild(joined);
      }
    });
    // Back to this page from the browser's cache: its fields usable again, no stale copy.
    window.addEventListener("pageshow", () => {
      filters.querySelectorAll("input[name], select[name]").forEach((field) => {
        if (field.type === "hidden" && field.name === "cols") field.remove();
        else field.disabled = false;
      });
    });
  }
  const form = document.getElementById("compare");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const ids = [...document.querySelectorAll('input[type="checkbox"][name="runs"][form="compare"]:checked')]
      .map((box) => box.value);
    const hint = form.querySelector(".hint");
    if (ids.length < 2) {
      hint.textContent = "Select two or more runs to compare.";
      return;
    }
    hint.textContent = "";
    window.location.href = "/ui/compare?runs=" + ids.map(encodeURIComponent).join(",");
  });
})();
