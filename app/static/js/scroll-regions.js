// A table wider than its .table-scroll box scrolls inside the box, never the page.
// Such a box must be reachable by keyboard (arrow keys scroll it) and named for a
// screen reader: it gets tabindex, role=region and a label from its table while it
// overflows, and loses them when it fits again (window resized, live refresh).
(function () {
  "use strict";

  // The table's own name, else the heading just above the box, else "Table".
  function label(box) {
    var table = box.querySelector("table");
    var caption = table && table.querySelector("caption");
    if (table && table.getAttribute("aria-label")) return table.getAttribute("aria-label");
    if (caption && caption.textContent.trim()) return caption.textContent.trim();
    for (var node = box.previousElementSibling; node; node = node.previousElementSibling) {
      if (/^H[1-4]$/.test(node.tagName)) return node.textContent.trim();
    }
    return "Table";
  }

  function mark(root) {
    var boxes = (root || document).querySelectorAll(".table-scroll");
    for (var i = 0; i < boxes.length; i++) {
      var box = boxes[i];
      if (box.scrollWidth > box.clientWidth + 1) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", label(box) + " (scrolls sideways)");
      } else if (box.hasAttribute("tabindex")) {
        box.removeAttribute("tabindex");
        box.removeAttribute("role");
        box.removeAttribute("aria-label");
      }
    }
  }

  var pending = null;
  function soon() {
    if (pending) return;
    pending = window.requestAnimationFrame(function () {
      pending = null;
      mark(document);
    });
  }

  document.addEventListener("DOMContentLoaded", soon);
  window.addEventListener("resize", soon);
  // htmx swaps the live parts of a page (overview, alerts) every few seconds.
  document.addEventListener("htmx:afterSettle", soon);
})();
