/* Value page chart: the mark-to-market value of each account and of the desk over the
 * page's range, one line each, from /value/series (exact decimal strings; floats only
 * place the lines). The range buttons are plain links: the page and its chart follow
 * the URL.
 */
(function () {
  "use strict";

  const root = document.getElementById("value-chart");
  if (!root) return;
  const plotBox = root.querySelector(".chart-plot");
  const message = root.querySelector(".chart-message");

  function say(kind, text) {
    message.hidden = !text;
    message.className = `chart-message chart-${kind}`;
    message.setAttribute("role", kind === "error" ? "alert" : "status");
    message.textContent = text || "";
  }

  if (typeof uPlot === "undefined" || !window.HistoryChart) {
    say("error", "Could not load the chart: its scripts did not load.");
    root.dataset.state = "error";
    return;
  }
  const clock = HistoryChart.makeClock(root.dataset.timezone);
  let plot = null;
  let payload = null;

  function lines(doc) {
    const all = doc.accounts.map((a) => ({ label: a.account, texts: a.values }));
    all.push({ label: "Desk", texts: doc.desk, desk: true });
    return all.filter((l) => l.texts.some((t) => t !== null));
  }

  function draw() {
    if (plot) plot.destroy();
    plot = null;
    const shown = lines(payload);
    root.dataset.lines = String(shown.length);
    if (!shown.length) {
      plotBox.hidden = true;
      say("empty", "No priced positions in this range.");
      root.dataset.state = "empty";
      return;
    }
    say("", "");
    plotBox.hidden = false;
    const palette = HistoryChart.colours(root);
    const axis = { stroke: palette.axis, grid: { stroke: palette.grid, width: 1 }, ticks: { stroke: palette.grid, width: 1 } };
    const width = plotBox.clientWidth || 600;
    const opts = {
      width,
      height: HistoryChart.heightFor(width),
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), clock.zone),
      scales: { x: { time: true } },
      axes: [
        { ...axis, values: HistoryChart.timeTicks(clock) },
        { ...axis, size: HistoryChart.axisSize },
      ],
      series: [
        { label: `Time (${clock.zone})`, value: (u, v) => (v == null ? "—" : clock.label(v)) },
        ...shown.map((line, i) => ({
          label: `${line.label} (${payload.currency})`,
          stroke: line.desk ? palette.axis : palette.lines[i % palette.lines.length],
          width: line.desk ? 2.5 : 1.5,
          spanGaps: false,
          value: (u, v, s, idx) => (idx == null || line.texts[idx] === null ? "—" : line.texts[idx]),
        })),
      ],
    };
    const data = [payload.times, ...shown.map((l) => l.texts.map((t) => (t === null ? null : Number(t))))];
    plot = new uPlot(opts, data, plotBox);
    root.dataset.state = "ready";
  }

  async function load() {
    root.dataset.state = "loading";
    try {
      const response = await fetch(new URL(root.dataset.seriesUrl, window.location.href), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const json = (response.headers.get("Content-Type") || "").includes("json");
      if (!response.ok || !json) throw new Error(`the server answered ${response.status}`);
      payload = await response.json();
      draw();
    } catch (err) {
      plotBox.hidden = true;
      say("error", `Could not load the chart: ${err.message}.`);
      root.dataset.state = "error";
    }
  }

  new ResizeObserver(() => {
    if (!plot) return;
    const width = plotBox.clientWidth;
    if (width && width !== plot.width) plot.setSize({ width, height: HistoryChart.heightFor(width) });
  }).observe(plotBox);
  const redraw = () => payload && draw();
  new MutationObserver(redraw).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redraw);

  load();
})();
