/* Drawing for the history page chart (app/static/js/chart.js drives it): times in the
 * viewer's timezone, the series document shaped for uPlot, and the plot itself with its
 * alert markers; limit lines and alert spans come from chart-overlay.js. Exposes
 * window.HistoryChart; the value page reuses its parts.
 */
(function () {
  "use strict";

  const STATES = ["firing", "pending", "resolved", "normal"];
  const MARKER_HOVER_PX = 8;

  /* ---- time in the viewer's timezone ------------------------------------------------ */

  function makeClock(requested) {
    let zone = requested || "UTC";
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: zone });
    } catch (e) {
      zone = "UTC"; // a zone this browser does not know: UTC is at least honest
    }
    const fmt = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      timeZoneName: "short",
    });
    function wall(seconds) {
      const out = {};
      for (const p of fmt.formatToParts(new Date(Math.floor(seconds) * 1000))) out[p.type] = p.value;
      return out;
    }
    function offset(seconds) {
      const w = wall(seconds);
      return Date.UTC(+w.year, +w.month - 1, +w.day, +w.hour, +w.minute, +w.second) / 1000 - Math.floor(seconds);
    }
    return {
      zone,
      wall,
      // "2026-03-01 12:00:05 CET", as the table shows times.
      label(seconds) {
        const w = wall(seconds);
        return `${w.year}-${w.month}-${w.day} ${w.hour}:${w.minute}:${w.second} ${w.timeZoneName}`;
      },
      // The filter form's from/to text for a moment: yyyy-mm-dd hh:mm[:ss] in the zone.
      toInput(seconds) {
        const w = wall(seconds);
        const base = `${w.year}-${w.month}-${w.day} ${w.hour}:${w.minute}`;
        return w.second === "00" ? base : `${base}:${w.second}`;
      },
      // yyyy-mm-dd hh:mm[:ss] (or T between) or a bare date, read in the viewer's zone, as the
      // server reads it.
      fromInput(text) {
        const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(text.trim());
        if (!m) return null;
        const asUtc = Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0)) / 1000;
        // Two passes settle the offset on either side of a daylight-saving change.
        const guess = asUtc - offset(asUtc);
        return asUtc - offset(guess);
      },
    };
  }

  /* ---- the series document ---------------------------------------------------------- */

  // uPlot wants one x array shared by every line; accounts report at their own times,
  // so join them and leave gaps (spanned when drawn). The exact strings ride alongside.
  function shape(payload, metric) {
    const column = metric === "notional" ? 2 : 1;
    const times = new Set();
    for (const s of payload.series) for (const p of s.points) if (p[column] !== null) times.add(p[0]);
    const xs = Array.from(times).sort((a, b) => a - b);
    const at = new Map(xs.map((t, i) => [t, i]));
    const lines = [];
    for (const s of payload.series) {
      const ys = new Array(xs.length).fill(null);
      const texts = new Array(xs.length).fill(null);
      for (const p of s.points) {
        if (p[column] === null) continue;
        const i = at.get(p[0]);
        ys[i] = Number(p[column]);
        texts[i] = p[column];
      }
      lines.push({ account: s.account, ys, texts });
    }
    return { xs, lines: lines.filter((l) => l.texts.some((t) => t !== null)) };
  }

  function hasNotional(payload) {
    return payload.series.some((s) => s.points.some((p) => p[2] !== null));
  }

  function span(seconds) {
    const units = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
    const [size, unit] = units.find(([size]) => seconds >= size * 2) || units[units.length - 1];
    return `${+(seconds / size).toFixed(1)} ${unit}`;
  }

  /* ---- the plot --------------------------------------------------------------------- */

  // Colours come from custom properties in chart.css, so a theme can retune them.
  function colours(el) {
    const css = getComputedStyle(el);
    const read = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    const lines = [];
    for (let i = 1; i <= 8; i++) lines.push(read(`--chart-line-${i}`, "#3b82f6"));
    const states = {};
    for (const s of STATES) states[s] = read(`--chart-${s}`, "#94a3b8");
    return {
      axis: read("--chart-axis", "#6b7280"),
      grid: read("--chart-grid", "rgba(128,128,128,.25)"),
      background: read("--pico-background-color", "#fff"),
      limit: read("--chart-limit", "#dc2626"),
      clear: read("--chart-clear", "#16a34a"),
      firingSpan: read("--chart-span-firing", "rgba(239,68,68,.12)"),
      previewSpan: read("--chart-span-preview", "rgba(168,85,247,.14)"),
      lines,
      states,
    };
  }

  // Alert transitions as dashed vertical lines with a flag on top, coloured by the state
  // entered; hovering near one shows its rule, state, account and value.
  function markersPlugin(markers, palette, clock, onDrawn) {
    let tip = null;
    // The markers in view at the last draw: uPlot draws after every scale change and
    // before moving the cursor, so hovering reuses them instead of filtering per move.
    let drawn = [];
    return {
      hooks: {
        init(u) {
          tip = document.createElement("div");
          tip.className = "chart-marker-tip";
          tip.hidden = true;
          u.over.appendChild(tip);
        },
        draw(u) {
          const ctx = u.ctx;
          const ratio = uPlot.pxRatio;
          const { top, height } = u.bbox;
          const { min, max } = u.scales.x;
          drawn = markers.filter((m) => m.time >= min && m.time <= max);
          ctx.save();
          ctx.lineWidth = 2 * ratio;
          ctx.setLineDash([5 * ratio, 4 * ratio]);
          for (const m of drawn) {
            const x = Math.round(u.valToPos(m.time, "x", true));
            const colour = palette.states[m.state] || palette.states.normal;
            ctx.strokeStyle = colour;
            ctx.fillStyle = colour;
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            ctx.beginPath();
            ctx.moveTo(x - 6 * ratio, top);
            ctx.lineTo(x + 6 * ratio, top);
            ctx.lineTo(x, top + 9 * ratio);
            ctx.closePath();
            ctx.fill();
          }
          ctx.restore();
          onDrawn(u, drawn.length);
        },
        setCursor(u) {
          const left = u.cursor.left;
          const near =
            left == null || left < 0
              ? []
              : drawn.filter((m) => Math.abs(u.valToPos(m.time, "x") - left) <= MARKER_HOVER_PX);
          tip.hidden = near.length === 0;
          if (!near.length) return;
          tip.replaceChildren(
            ...near.map((m) => {
              const line = document.createElement("div");
              const value = m.value === null ? "" : ` · value ${m.value}`;
              line.textContent = `${m.rule}: ${m.state} · ${m.account}${value} · ${clock.label(m.time)}`;
              return line;
            })
          );
          const x = u.valToPos(near[0].time, "x");
          tip.style.left = `${Math.min(Math.max(x, 80), u.over.clientWidth - 80)}px`;
        },
      },
    };
  }

  // Time ticks in the viewer's zone, 24-hour like the table; the date under the first
  // tick of each day.
  function timeTicks(clock) {
    return (u, splits, axisIdx, space, incr) => {
      let lastDay = null;
      return splits.map((t) => {
        const w = clock.wall(t);
        if (incr >= 28 * 86400) return `${w.year}-${w.month}`;
        if (incr >= 86400) return `${w.month}-${w.day}`;
        const time = incr < 60 ? `${w.hour}:${w.minute}:${w.second}` : `${w.hour}:${w.minute}`;
        const day = `${w.month}-${w.day}`;
        const label = day === lastDay ? time : `${time}\n${day}`;
        lastDay = day;
        return label;
      });
    };
  }

  // Room for the widest tick label of the y axis (amounts can be long).
  function axisSize(u, values, axisIdx, cycleNum) {
    const axis = u.axes[axisIdx];
    if (cycleNum > 1) return axis._size;
    const longest = (values || []).reduce((a, v) => (v.length > a.length ? v : a), "");
    u.ctx.font = axis.font[0];
    return Math.ceil(axis.ticks.size + axis.gap + u.ctx.measureText(longest).width / uPlot.pxRatio) + 4;
  }

  function heightFor(width) {
    return width < 500 ? 220 : 300;
  }

  /* A uPlot of `metric` ("amount" or "notional") for the series document `payload` over
   * the window `win` ({from, to, now} in epoch seconds, from/to null when open), or null
   * when there is no point to draw. `on.select(u)` gets drag selections, `on.drawn(u,
   * markerCount)` every redraw. */
  function buildPlot(box, { clock, payload, metric, win, on }) {
    const { xs, lines } = shape(payload, metric);
    if (!xs.length) return null;
    const palette = colours(box);
    const markers = payload.markers || [];
    const markerTimes = markers.map((m) => m.time);
    const limits = (payload.limits || []).filter((l) => l.metric === metric);
    const limitValues = limits.map((l) => Number(l.value));
    const spans = payload.spans || [];
    const axis = {
      stroke: palette.axis,
      grid: { stroke: palette.grid, width: 1 },
      ticks: { stroke: palette.grid, width: 1 },
    };
    const width = box.clientWidth || 600;
    const opts = {
      width,
      height: heightFor(width),
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), clock.zone),
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales: {
        x: {
          time: true,
          // The window asked for, so an hour shows as an hour however sparse its data;
          // an open end stretches to now or to the data, and to any marker past it.
          range(u, min, max) {
            let lo = win.from !== null ? win.from : Math.min(min, ...markerTimes);
            let hi = win.to !== null ? win.to : Math.max(max, ...markerTimes, win.from !== null ? win.now : max);
            if (hi - lo < 1) [lo, hi] = [lo - 60, hi + 60];
            return [lo, hi];
          },
        },
        // The data and every limit line in view, so the distance to a limit shows.
        y: {
          range(u, min, max) {
            if (min == null) return [0, 1];
            return uPlot.rangeNum(Math.min(min, ...limitValues), Math.max(max, ...limitValues), 0.1, true);
          },
        },
      },
      axes: [
        { ...axis, values: timeTicks(clock) },
        { ...axis, size: axisSize },
      ],
      series: [
        { label: `Time (${clock.zone})`, value: (u, v) => (v == null ? "—" : clock.label(v)) },
        ...lines.map((line, i) => ({
          label: `${line.account} ${metric}`,
          stroke: palette.lines[i % palette.lines.length],
          width: 1.5,
          spanGaps: true,
          // The exact string the trading system sent, not the float that places the point.
          value: (u, v, s, idx) => (idx == null || line.texts[idx] === null ? "—" : line.texts[idx]),
        })),
      ],
      hooks: {
        setSelect: [(u) => on.select(u)],
      },
      // The markers are drawn last, over the lines; on.drawn is told from there.
      // Limit lines and spans (chart-overlay.js) under the markers.
      plugins: [ChartOverlay.plugin(limits, spans, palette), markersPlugin(markers, palette, clock, on.drawn)],
    };
    return new uPlot(opts, [xs, ...lines.map((l) => l.ys)], box);
  }

  window.HistoryChart = { makeClock, hasNotional, span, heightFor, buildPlot, colours, timeTicks, axisSize };
})();
