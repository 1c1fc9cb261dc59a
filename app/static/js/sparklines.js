// A 24 h sparkline in each overview row. The page itself never queries this data
// (so it stays fast): the series come from the JSON at the table's
// data-sparklines-url — {"series": [{"account", "asset", "points": [[epoch_seconds,
// "amount"], ...]}]} — fetched at most once per refresh interval and redrawn after
// every live refresh of the table.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var WIDTH = 120;
  var HEIGHT = 28;
  var PAD = 3;
  var cache = null; // "account\u0000asset" → [[seconds, number, "amount"], ...]
  var fetchedAt = 0;
  var inFlight = null;

  function interval() {
    return (Number(document.body.dataset.refreshSeconds) || 5) * 1000;
  }

  function key(account, asset) {
    return account + "\u0000" + asset;
  }

  function index(data) {
    var byKey = {};
    (data && data.series || []).forEach(function (series) {
      var points = (series.points || []).map(function (point) {
        return [Number(point[0]), Number.parseFloat(point[1]), String(point[1])];
      }).filter(function (point) {
        return Number.isFinite(point[0]) && Number.isFinite(point[1]);
      });
      points.sort(function (a, b) { return a[0] - b[0]; });
      byKey[key(series.account, series.asset)] = points;
    });
    return byKey;
  }

  function load(url) {
    if (inFlight) return inFlight;
    if (cache && Date.now() - fetchedAt < interval()) return Promise.resolve(cache);
    // Counted from the start, success or not: a failing endpoint is asked no
    // more often than a working one.
    fetchedAt = Date.now();
    inFlight = window.fetch(url, {
      credentials: "same-origin",
      // Not the person at the screen: does not count against the idle limit.
      headers: { "Accept": "application/json", "X-Background-Refresh": "1" }
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      // A redirect to the login page is HTML: keep the last lines drawn.
      if (!response.ok || type.indexOf("json") < 0) return cache;
      return response.json().then(function (data) {
        cache = index(data);
        return cache;
      });
    }).catch(function () {
      return cache;
    }).finally(function () {
      inFlight = null;
    });
    return inFlight;
  }

  function svgElement(name, attributes) {
    var element = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (attribute) {
      element.setAttribute(attribute, attributes[attribute]);
    });
    return element;
  }

  function draw(cell, points, label) {
    cell.replaceChildren();
    if (!points || !points.length) return;
    var t0 = points[0][0];
    var t1 = points[points.length - 1][0];
    var low = Math.min.apply(null, points.map(function (p) { return p[1]; }));
    var high = Math.max.apply(null, points.map(function (p) { return p[1]; }));
    function x(t) {
      return t1 > t0 ? PAD + (t - t0) / (t1 - t0) * (WIDTH - 2 * PAD) : WIDTH - PAD;
    }
    function y(v) {
      return high > low ? HEIGHT - PAD - (v - low) / (high - low) * (HEIGHT - 2 * PAD) : HEIGHT / 2;
    }
    var first = points[0];
    var last = points[points.length - 1];
    var text = "Last 24 h of " + label + ": " + points.length + " snapshots, from " + first[2] +
      " to " + last[2] + " (low " + low + ", high " + high + ")";
    var svg = svgElement("svg", {
      "class": "sparkline",
      "viewBox": "0 0 " + WIDTH + " " + HEIGHT,
      "width": WIDTH,
      "height": HEIGHT,
      "role": "img",
      "aria-label": text
    });
    var title = svgElement("title", {});
    title.textContent = text;
    svg.append(title);
    svg.append(svgElement("polyline", {
      "class": "sparkline-line",
      "points": points.map(function (p) {
        return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1);
      }).join(" ")
    }));
    svg.append(svgElement("circle", {
      "class": "sparkline-dot", "cx": x(last[0]).toFixed(1), "cy": y(last[1]).toFixed(1), "r": 2
    }));
    cell.append(svg);
  }

  function fill(region, series) {
    if (!series) return;
    region.querySelectorAll("tr[data-account][data-asset]").forEach(function (row) {
      var cell = row.querySelector("td.spark");
      if (!cell) return;
      var account = row.dataset.account;
      var asset = row.dataset.asset;
      draw(cell, series[key(account, asset)], account + "/" + asset);
    });
  }

  function render() {
    var region = document.getElementById("overview-live");
    var url = region && region.dataset.sparklinesUrl;
    if (!url) return;
    // Draw what we have at once (no blank flash after a refresh), then anything newer;
    // series still fresh (or a failed fetch) come back as the same object: drawn already.
    var drawn = cache;
    fill(region, drawn);
    load(url).then(function (series) {
      var current = document.getElementById("overview-live");
      if (current && series !== drawn) fill(current, series);
    });
  }

  document.addEventListener("DOMContentLoaded", render);
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.target && event.target.id === "overview-live") render();
  });
})();
