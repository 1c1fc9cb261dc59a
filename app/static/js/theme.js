// Colour theme: loaded blocking in <head> so the stored choice is on <html> before
// the first paint (no flash of the wrong theme). With no stored choice Pico
// follows the system setting (prefers-color-scheme).
(function () {
  "use strict";
  var KEY = "tm-theme";
  var root = document.documentElement;
  var darkSystem = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function stored() {
    try {
      var value = window.localStorage.getItem(KEY);
      return value === "light" || value === "dark" ? value : "auto";
    } catch (e) {
      return "auto"; // storage blocked: follow the system
    }
  }

  function store(mode) {
    try {
      if (mode === "auto") window.localStorage.removeItem(KEY);
      else window.localStorage.setItem(KEY, mode);
    } catch (e) {
      // Storage blocked: the choice holds for this page only.
    }
  }

  function apply(mode) {
    if (mode === "auto") root.removeAttribute("data-theme");
    else root.setAttribute("data-theme", mode);
  }

  // auto → the opposite of what the system shows → the same as the system → auto,
  // so the first press always changes what the eye sees.
  function next(mode) {
    var systemDark = darkSystem ? darkSystem.matches : false;
    var opposite = systemDark ? "light" : "dark";
    if (mode === "auto") return opposite;
    if (mode === opposite) return opposite === "dark" ? "light" : "dark";
    return "auto";
  }

  apply(stored());

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-switch");
    if (!button) return;
    var mode = stored();
    function show() {
      button.textContent = "Theme: " + mode;
      button.title = "Colour theme: " + mode + (mode === "auto" ? " (follows the system)" : "") +
        ". Press to change.";
    }
    show();
    button.hidden = false;
    button.addEventListener("click", function () {
      mode = next(mode);
      store(mode);
      apply(mode);
      show();
    });
    // Another tab changed the theme: follow it.
    window.addEventListener("storage", function (event) {
      if (event.key !== KEY && event.key !== null) return;
      mode = stored();
      apply(mode);
      show();
    });
  });
})();
