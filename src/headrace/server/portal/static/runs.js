// The runs list: "Compare selected" goes to /ui/compare?runs=ID,ID (without JavaScript the
// form still submits, as runs=ID&runs=ID).
"use strict";
(() => {
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
