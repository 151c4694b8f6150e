// The Runs page: "select all", the count of ticked runs, and whether the live stream is connected.
// Everything works without it too (tick the boxes and press a button); this only helps.
(function () {
  "use strict";

  function boxes() {
    return Array.from(document.querySelectorAll('#runs-body input[name="run"]'));
  }

  function refresh() {
    var all = document.getElementById("pick-all");
    var note = document.getElementById("runs-selected");
    var form = document.getElementById("bulk");
    if (!all || !note || !form) return;
    var list = boxes();
    if (!note.dataset.idle) note.dataset.idle = note.textContent;
    var ticked = list.filter(function (b) { return b.checked; }).length;
    all.checked = ticked > 0 && ticked === list.length;
    all.indeterminate = ticked > 0 && ticked < list.length;
    note.textContent = ticked ? ticked + (ticked === 1 ? " run selected" : " runs selected") : note.dataset.idle;
    form.classList.toggle("has-selection", ticked > 0);
    form.querySelectorAll("button").forEach(function (b) { b.disabled = ticked === 0; });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLInputElement)) return;
    if (target.id === "pick-all") {
      boxes().forEach(function (b) { b.checked = target.checked; });
    }
    if (target.id === "pick-all" || target.name === "run") refresh();
  });

  function live(on) {
    var badge = document.getElementById("runs-live");
    if (badge) badge.classList.toggle("on", on);
  }

  document.addEventListener("htmx:sseOpen", function () { live(true); });
  document.addEventListener("htmx:sseError", function () { live(false); });
  // New rows go on top once: a stream opened again from scratch (after an error) may send a run
  // this page already shows; its row stays (with its tick) and gets the run's changes as before.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var detail = event.detail;
    if (!detail.target || detail.target.id !== "runs-body" || !detail.fragment.querySelectorAll) return;
    detail.fragment.querySelectorAll("tr[id]").forEach(function (row) {
      if (document.getElementById(row.id)) row.remove();
    });
  });
  // Rows come and go with the stream (a new run, a whole list): keep the count and the buttons right.
  document.addEventListener("htmx:oobAfterSwap", refresh);
  document.addEventListener("DOMContentLoaded", refresh);
})();
