// The Queues page refreshes its table every 5 s (htmx, hx-trigger="every 5s" on #queues). A swap
// would wipe a limit being typed and close an open "Pause?" dialog, so the refresh skips its turn
// while the table is in use: an input in it has focus or holds a value, or a dialog is open.
// The next turn after that refreshes as before. Without this script nothing refreshes: the forms work.
(function () {
  "use strict";

  function inUse(region) {
    var active = document.activeElement;
    if (active && active.tagName === "INPUT" && region.contains(active)) return true;
    var typed = Array.from(region.querySelectorAll("input[name='limit']")).some(function (input) {
      return input.value !== "" || (input.validity && input.validity.badInput);
    });
    return typed || region.querySelector("[popover]:popover-open") !== null;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt && elt.id === "queues" && inUse(elt)) event.preventDefault();
  });
})();
