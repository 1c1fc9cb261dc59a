// Until the user picks a timezone on the account page, times are shown in the
// browser's: report it (once per change, CSRF-protected) and reload to show it.
(function () {
  "use strict";
  var body = document.body;
  var url = body.dataset.timezoneReport;
  if (!url) return;
  var UTC_NAMES = ["UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/GMT", "GMT", "Etc/Universal",
    "Universal", "Etc/Zulu", "Zulu"];
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  var current = body.dataset.timezone;
  if (!zone || zone === current) return;
  if (UTC_NAMES.indexOf(zone) >= 0 && UTC_NAMES.indexOf(current) >= 0) return;
  // A zone the server refused is not sent again on every page of this tab.
  var TRIED = "tm-timezone-reported";
  try {
    if (window.sessionStorage.getItem(TRIED) === zone) return;
    window.sessionStorage.setItem(TRIED, zone);
  } catch (e) {
    // No storage: at worst the report repeats once per page.
  }
  var token = document.querySelector('meta[name="csrf-token"]');
  window.fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      "Accept": "application/json",
      "X-CSRFToken": token ? token.content : ""
    },
    body: JSON.stringify({ timezone: zone })
  }).then(function (response) {
    return response.ok ? response.json() : null;
  }).then(function (data) {
    if (!data || !data.applied || data.timezone !== zone) return;
    var active = document.activeElement;
    // Someone already typing keeps the page; the next page shows the new zone.
    if (active && active !== body && active.matches("input, textarea, select")) return;
    window.location.reload();
  }).catch(function () {
    // Offline: let the next page try again.
    try {
      window.sessionStorage.removeItem(TRIED);
    } catch (e) {
      // No storage: nothing was remembered.
    }
  });
})();
