// Live pages: every element marked data-live (the overview table, the alerts table,
// the firing badge) is re-fetched by htmx every data-refresh-seconds while the tab
// is visible. Rows whose values changed are briefly highlighted; a session that
// has ended stops the refresh and says so instead of swapping the login page in.
(function () {
  "use strict";
  var body = document.body;
  var seconds = Number(body.dataset.refreshSeconds) || 5;
  var timer = null;
  var lastRefresh = Date.now();
  var signedOut = false;
  var HIGHLIGHT_MS = 3000;
  var pending = {}; // region id → what its rows and scroll looked like before the swap
  // Pages without a live region (the login page) never run the timer, tab switches included.
  var live = document.querySelector("[data-live]") !== null;

  function visible() {
    return document.visibilityState === "visible";
  }

  // Someone typing in the region (an acknowledgement comment) would lose the text.
  function busy(region) {
    var active = document.activeElement;
    if (active && region.contains(active) && active.matches("input, textarea, select")) {
      return true;
    }
    var fields = region.querySelectorAll("input:not([type=hidden]), textarea");
    return Array.prototype.some.call(fields, function (field) {
      return field.value !== "";
    });
  }

  function refresh() {
    if (signedOut || !visible() || !window.htmx) return;
    lastRefresh = Date.now();
    document.querySelectorAll("[data-live]").forEach(function (region) {
      if (!busy(region)) window.htmx.trigger(region, "live-refresh");
    });
  }

  // A refresh is not the person at the screen doing something: tell the server, so
  // an unattended dashboard still reaches the session's idle limit.
  document.addEventListener("htmx:configRequest", function (event) {
    var trigger = event.detail.triggeringEvent;
    if (trigger && trigger.type === "live-refresh") {
      event.detail.headers["X-Background-Refresh"] = "1";
    }
  });

  function start() {
    if (timer === null && live && !signedOut) timer = window.setInterval(refresh, seconds * 1000);
  }

  function stop() {
    if (timer !== null) window.clearInterval(timer);
    timer = null;
  }

  // Hidden tabs cost nothing; coming back shows fresh numbers at once.
  document.addEventListener("visibilitychange", function () {
    if (!visible()) {
      stop();
      return;
    }
    if (Date.now() - lastRefresh >= seconds * 1000) refresh();
    start();
  });

  function notice(text, withReload) {
    var box = document.getElementById("live-notice");
    if (!box) return;
    box.textContent = text;
    if (withReload) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "compact";
      button.textContent = "Reload";
      button.addEventListener("click", function () {
        window.location.reload();
      });
      box.append(" ", button);
    }
    box.hidden = false;
  }

  function clearNotice() {
    var box = document.getElementById("live-notice");
    if (box && !signedOut) box.hidden = true;
  }

  function isLive(elt) {
    return elt && elt.hasAttribute && elt.hasAttribute("data-live");
  }

  // An expired session answers 401, or redirects to the login page (which the
  // browser follows, so it arrives as a 200 from another URL).
  function sessionEnded(xhr) {
    if (xhr.status === 401) return true;
    var login = body.dataset.loginUrl;
    if (!login || !xhr.responseURL) return false;
    return new URL(xhr.responseURL, window.location.href).pathname === login;
  }

  function signOut() {
    signedOut = true;
    stop();
    notice("Signed out — reload the page to sign in again. The numbers below are no longer updated.", true);
  }

  function rowValues(region) {
    var values = {};
    region.querySelectorAll("[data-live-key]").forEach(function (row) {
      values[row.dataset.liveKey] = row.dataset.liveValues;
    });
    return values;
  }

  function scrollOffsets(region) {
    return Array.prototype.map.call(region.querySelectorAll(".table-scroll"), function (box) {
      return box.scrollLeft;
    });
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var elt = event.detail.elt;
    if (!isLive(elt)) return;
    if (sessionEnded(event.detail.xhr)) {
      event.detail.shouldSwap = false;
      event.detail.isError = false;
      signOut();
      return;
    }
    if (!event.detail.shouldSwap) return;
    clearNotice();
    if (elt.id) {
      pending[elt.id] = { values: rowValues(elt), scroll: scrollOffsets(elt) };
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var region = event.target;
    if (!isLive(region) || !region.id || !pending[region.id]) return;
    var before = pending[region.id];
    delete pending[region.id];
    region.querySelectorAll(".table-scroll").forEach(function (box, i) {
      if (before.scroll[i]) box.scrollLeft = before.scroll[i];
    });
    region.querySelectorAll("[data-live-key]").forEach(function (row) {
      if (before.values[row.dataset.liveKey] !== row.dataset.liveValues) {
        row.classList.add("changed");
      }
    });
    // The CSS fades the highlight out once the class goes (instantly for reduced motion).
    window.setTimeout(function () {
      region.querySelectorAll("tr.changed").forEach(function (row) {
        row.classList.remove("changed");
      });
    }, HIGHLIGHT_MS);
    if (region.id === "firing-badge") showFiringInTitle(region);
  });

  function showFiringInTitle(badge) {
    var firing = Number(badge.dataset.firing) || 0;
    var title = document.title.replace(/^\(\d+\) /, "");
    document.title = firing ? "(" + firing + ") " + title : title;
  }

  document.addEventListener("htmx:responseError", function (event) {
    if (!isLive(event.detail.elt)) return;
    if (sessionEnded(event.detail.xhr)) signOut();
    else notice("The server did not answer the last refresh (" + event.detail.xhr.status + "); retrying.", false);
  });

  document.addEventListener("htmx:sendError", function (event) {
    if (isLive(event.detail.elt)) notice("Cannot reach the server; retrying.", false);
  });

  start();
})();
