/* History page chart: each account's amount (or notional) over the chosen window, with
 * alert transitions drawn as markers.
 *
 * The page URL is the one source of the window: `range=1h|24h|7d|30d` (a window ending
 * now), or `from`/`to` typed in the viewer's timezone exactly as the table's filter form
 * sends them, plus `account`. The server reads the same parameters for the table below,
 * so chart and table always show one window. Range buttons, the filter form and a drag
 * across the plot push a new URL, refetch the series and swap in the table from the same
 * URL, without reloading the page; back/forward and a shared link restore the view.
 *
 * The chart document carries the limit lines of the rules that apply (`rule=<id>` in the
 * page URL keeps one rule's) and the spans its alerts fired. Another page can embed the
 * chart element with `data-overlay-url` (a JSON {"limits": [...], "spans": [...]} drawn
 * instead of the document's own) and `data-from`/`data-to` (ISO moments: a fixed
 * window, no range buttons).
 * The element reports what it drew in data-limits, data-spans and data-markers.
 */
(function () {
  "use strict";

  const root = document.getElementById("chart");
  if (!root) return;

  const RANGES = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };
  const plotBox = root.querySelector(".chart-plot");
  const message = root.querySelector(".chart-message");
  // Another page's chart may leave the note out.
  const note = root.querySelector(".chart-note") || document.createElement("p");
  const metricGroup = root.querySelector(".chart-metric");
  const form = document.getElementById("history-filters");
  // A fixed window given by the page (ISO), instead of the range in the URL.
  const fixed = root.dataset.from || root.dataset.to ? {
    from: root.dataset.from ? Date.parse(root.dataset.from) / 1000 : null,
    to: root.dataset.to ? Date.parse(root.dataset.to) / 1000 : null,
  } : null;
  if (typeof uPlot === "undefined" || !window.HistoryChart || !window.ChartOverlay) {
    message.textContent = "Could not load the chart: its scripts did not load.";
    message.hidden = false;
    root.dataset.state = "error";
    return;
  }
  const clock = HistoryChart.makeClock(root.dataset.timezone);

  let plot = null; // the uPlot instance on screen
  let shown = null; // {payload, state, win} behind it, to redraw on resize or theme change
  let inFlight = null; // AbortController of the newest load

  /* ---- the view in the URL ---------------------------------------------------------- */

  function readState() {
    const q = new URLSearchParams(window.location.search);
    return {
      account: q.get("account") || "",
      from: q.get("from") || "",
      to: q.get("to") || "",
      range: q.get("range") || "",
      rule: q.get("rule") || "",
      // Unchosen ("auto"): notional when every limit line drawn is a notional one.
      metric: ["notional", "amount"].includes(q.get("chart")) ? q.get("chart") : "auto",
    };
  }

  function urlFor(state) {
    const q = new URLSearchParams();
    if (state.account) q.set("account", state.account);
    if (state.from) q.set("from", state.from);
    if (state.to) q.set("to", state.to);
    if (!state.from && !state.to && RANGES[state.range]) q.set("range", state.range);
    if (state.rule) q.set("rule", state.rule);
    if (state.metric !== "auto") q.set("chart", state.metric);
    const query = q.toString();
    return window.location.pathname + (query ? `?${query}` : "");
  }

  // The window in epoch seconds; explicit from/to win over a range, as on the server.
  function windowOf(state) {
    const now = Date.now() / 1000;
    if (fixed) return { ...fixed, now };
    if (state.from || state.to) {
      const from = state.from ? clock.fromInput(state.from) : null;
      const to = state.to ? clock.fromInput(state.to) : null;
      if ((state.from && from === null) || (state.to && to === null)) {
        return { error: "The from/to filter is not a date and time; showing everything." };
      }
      if (from !== null && to !== null && from >= to) return { error: "'from' must be before 'to'." };
      return { from, to, now };
    }
    if (RANGES[state.range]) return { from: now - RANGES[state.range], to: null, now };
    return { from: null, to: null, now };
  }

  /* ---- messages and the controls ------------------------------------------------------ */

  function say(kind, text) {
    message.hidden = !text;
    message.className = `chart-message chart-${kind}`;
    message.setAttribute("role", kind === "error" ? "alert" : "status");
    message.textContent = text || "";
  }

  function syncControls(state) {
    const active = state.from || state.to ? "" : RANGES[state.range] ? state.range : "all";
    for (const link of root.querySelectorAll("[data-range]")) {
      link.setAttribute("aria-pressed", String(link.dataset.range === active));
      // Kept current, so a link opened in a new tab shows this account too.
      link.href = urlFor({ ...state, range: link.dataset.range, from: "", to: "" });
    }
    if (form) {
      form.elements.from.value = state.from;
      form.elements.to.value = state.to;
      form.elements.account.value = state.account;
      form.elements.range.value = state.from || state.to ? "" : state.range;
    }
  }

  /* ---- data ------------------------------------------------------------------------- */

  async function loadSeries(state, win, signal) {
    const url = new URL(root.dataset.seriesUrl, window.location.href);
    if (win.from !== null) url.searchParams.set("from", String(Math.floor(win.from)));
    if (win.to !== null) url.searchParams.set("to", String(Math.ceil(win.to)));
    if (state.account) url.searchParams.set("account", state.account);
    if (state.rule) url.searchParams.set("rule", state.rule);
    const [payload, overlay] = await Promise.all([
      fetchJson(url, signal),
      root.dataset.overlayUrl ? fetchJson(new URL(root.dataset.overlayUrl, window.location.href), signal) : null,
    ]);
    return ChartOverlay.applied(payload, overlay);
  }

  async function fetchJson(url, signal) {
    const response = await fetch(url, {
      signal,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    const json = (response.headers.get("Content-Type") || "").includes("json");
    const signedOut = "the session may have ended; reload the page to sign in again";
    if (response.status === 401) throw new Error(signedOut);
    if (!response.ok) {
      const body = json ? await response.json().catch(() => ({})) : {};
      throw new Error(body.message || `the server answered ${response.status}`);
    }
    // A login page instead of data: the session ended while the page was open.
    if (!json) throw new Error(signedOut);
    return response.json();
  }

  function draw() {
    if (plot) plot.destroy();
    const { payload, state, win } = shown;
    const notional = HistoryChart.hasNotional(payload);
    const limits = payload.limits || [];
    const metric = ChartOverlay.metricFor(limits, state.metric, notional);
    if (metricGroup) {
      metricGroup.hidden = !notional;
      for (const button of metricGroup.querySelectorAll("[data-metric]")) {
        button.setAttribute("aria-pressed", String(button.dataset.metric === metric));
      }
    }
    root.dataset.pointCount = String(payload.point_count);
    root.dataset.metric = metric;
    root.dataset.limits = String(limits.filter((l) => l.metric === metric).length);
    root.dataset.spans = String((payload.spans || []).length);
    plot = HistoryChart.buildPlot(plotBox, {
      clock,
      payload,
      metric,
      win,
      on: { select: zoomToSelection, drawn: drawn },
    });
    plotBox.hidden = !plot;
    if (!plot) {
      note.textContent = "";
      say("empty", "No snapshots in this range.");
      root.dataset.state = "empty";
      return;
    }
    say("", "");
    note.textContent = payload.downsampled
      ? `Downsampled to ${payload.point_count} points (slices of ${HistoryChart.span(payload.bucket_seconds)} ` +
        "per account); drag across the chart to zoom in to every snapshot."
      : "";
  }

  // What the page shows is on the chart element too, for whoever needs to read it back.
  function drawn(u, markers) {
    root.dataset.xMin = String(u.scales.x.min);
    root.dataset.xMax = String(u.scales.x.max);
    root.dataset.markers = String(markers);
    root.dataset.state = "ready";
  }

  /* ---- navigation ------------------------------------------------------------------- */

  async function show(state, { table }) {
    syncControls(state);
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    root.dataset.state = "loading";
    root.setAttribute("aria-busy", "true");
    if (table) refreshTable(controller.signal);
    let win = windowOf(state);
    const problem = win.error;
    // Unreadable filters: the server shows everything (and says so), and so does the chart.
    if (problem) win = { from: null, to: null, now: Date.now() / 1000 };
    try {
      const payload = await loadSeries(state, win, controller.signal);
      if (controller !== inFlight) return;
      shown = { payload, state, win };
      draw();
      if (problem) say("error", problem);
    } catch (err) {
      if (err.name === "AbortError") return;
      if (plot) plot.destroy();
      plot = null;
      shown = null;
      plotBox.hidden = true;
      note.textContent = "";
      say("error", `Could not load the chart: ${err.message.replace(/\.$/, "")}.`);
      root.dataset.state = "error";
    } finally {
      if (controller === inFlight) root.removeAttribute("aria-busy");
    }
  }

  // The table is server-rendered from the same URL: fetch that page and take its results
  // (with any complaint about the filters); a failure shows in the table's place.
  async function refreshTable(signal) {
    const box = document.getElementById("history-results");
    if (!box) return;
    try {
      const response = await fetch(window.location.href, {
        signal,
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("history-results");
      if (!fresh) throw new Error(`the server answered ${response.status}`);
      const flashes = Array.from(doc.querySelectorAll(".flash-error"));
      box.replaceChildren(...flashes, ...Array.from(fresh.childNodes));
      if (window.htmx) window.htmx.process(box);
    } catch (err) {
      if (err.name === "AbortError") return;
      const failed = document.createElement("p");
      failed.className = "chart-message chart-error";
      failed.setAttribute("role", "alert");
      failed.textContent = `Could not load the snapshots table: ${err.message}. Reload the page to try again.`;
      box.replaceChildren(failed);
    }
  }

  function go(state, how) {
    const url = urlFor(state);
    if (how === "push") window.history.pushState(null, "", url);
    else window.history.replaceState(null, "", url);
    return show(readState(), { table: true });
  }

  function zoomToSelection(u) {
    const { left, width } = u.select;
    if (width < 2 || fixed) return;
    const from = Math.floor(u.posToVal(left, "x"));
    const to = Math.max(Math.ceil(u.posToVal(left + width, "x")), from + 1);
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    go({ ...readState(), range: "", from: clock.toInput(from), to: clock.toInput(to) }, "push");
  }

  root.addEventListener("click", (event) => {
    const range = event.target.closest("[data-range]");
    // The range buttons are links (they work without this script); a modified click
    // still opens one in a new tab.
    if (range && !(event.ctrlKey || event.metaKey || event.shiftKey || event.button)) {
      event.preventDefault();
      go({ ...readState(), range: range.dataset.range, from: "", to: "" }, "push");
      return;
    }
    const metric = event.target.closest("[data-metric]");
    if (metric && shown) {
      const state = { ...readState(), metric: metric.dataset.metric };
      if (!fixed) window.history.replaceState(null, "", urlFor(state));
      syncControls(state);
      shown = { ...shown, state };
      draw();
    }
  });

  if (form) {
    // The filter form's from/to are the custom range; without this script it still works
    // as a plain GET form, and the chart then reads the same parameters on load.
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const state = {
        ...readState(),
        account: form.elements.account.value,
        from: form.elements.from.value,
        to: form.elements.to.value,
      };
      // Empty from/to keep the range in force, so changing the account keeps the window.
      if (state.from || state.to) state.range = "";
      const win = windowOf(state);
      if (win.error) {
        say("error", win.error);
        return;
      }
      go(state, "push");
    });
  }

  window.addEventListener("popstate", () => show(readState(), { table: true }));

  new ResizeObserver(() => {
    if (!plot) return;
    const width = plotBox.clientWidth;
    if (width && width !== plot.width) plot.setSize({ width, height: HistoryChart.heightFor(width) });
  }).observe(plotBox);

  // Colours are read when a plot is built: rebuild it when the theme changes.
  const redraw = () => shown && draw();
  new MutationObserver(redraw).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redraw);

  show(readState(), { table: false });
})();
