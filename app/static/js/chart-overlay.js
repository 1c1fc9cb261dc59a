/* What the history chart draws over its series (app/static/js/chart-plot.js builds the
 * plot): the spans an alert fired or a previewed rule would fire, shaded, and limit lines
 * across the plot (a rule's limit solid, its clear level dashed), each labelled at its
 * right end. Load it before chart-plot.js. Exposes window.ChartOverlay.
 */
(function () {
  "use strict";

  // Alert spans shaded and limit lines across the plot, drawn after the axes and before
  // the series; each line's label at its right end goes on top of the series.
  function overlayPlugin(limits, spans, palette) {
    function spanEdge(iso, fallback) {
      return iso === null ? fallback : Date.parse(iso) / 1000;
    }
    // The limits in view with their canvas row, from the last drawAxes.
    let shown = [];
    return {
      hooks: {
        drawAxes(u) {
          const ctx = u.ctx;
          const ratio = uPlot.pxRatio;
          const { left, top, width, height } = u.bbox;
          const { min, max } = u.scales.x;
          ctx.save();
          for (const s of spans) {
            const from = Math.max(spanEdge(s.from, min), min);
            const to = Math.min(spanEdge(s.to, max), max);
            if (!(to > from)) continue;
            const x0 = u.valToPos(from, "x", true);
            const x1 = u.valToPos(to, "x", true);
            ctx.fillStyle = s.kind === "preview" ? palette.previewSpan : palette.firingSpan;
            ctx.fillRect(x0, top, Math.max(x1 - x0, ratio), height);
          }
          shown = [];
          for (const l of limits) {
            const y = Math.round(u.valToPos(Number(l.value), "y", true));
            if (y < top || y > top + height) continue;
            const colour = l.kind === "clear" ? palette.clear : palette.limit;
            shown.push({ line: l, y, colour });
            ctx.strokeStyle = colour;
            // Two device pixels on a whole-pixel row: crisp, not smeared over three rows.
            ctx.lineWidth = 2 * ratio;
            ctx.setLineDash(l.kind === "clear" ? [6 * ratio, 4 * ratio] : []);
            ctx.beginPath();
            ctx.moveTo(left, y);
            ctx.lineTo(left + width, y);
            ctx.stroke();
          }
          ctx.restore();
        },
        draw(u) {
          const ctx = u.ctx;
          const ratio = uPlot.pxRatio;
          const right = u.bbox.left + u.bbox.width - 4 * ratio;
          ctx.save();
          ctx.font = `${11 * ratio}px sans-serif`;
          ctx.textAlign = "right";
          ctx.textBaseline = "bottom";
          for (const { line, y, colour } of shown) {
            // On a patch of the page's background, so a series crossing it stays readable.
            // The number first and named, then the rule: a rule is often named after
            // its limit ("BTC over 4"), and "BTC over 4 4" would read as a typo.
            const text = `${line.kind === "clear" ? "clears" : "limit"} ${line.value} · ${line.label}`;
            const size = ctx.measureText(text).width;
            ctx.fillStyle = palette.background;
            ctx.globalAlpha = 0.85;
            ctx.fillRect(right - size - 2 * ratio, y - 14 * ratio, size + 4 * ratio, 12 * ratio);
            ctx.globalAlpha = 1;
            ctx.fillStyle = colour;
            ctx.fillText(text, right, y - 2 * ratio);
          }
          ctx.restore();
        },
      },
    };
  }

  // The page's overlay says exactly which lines and spans matter there (an alert's rule,
  // a rule being previewed): it replaces the document's, which would draw them twice or
  // put other rules' lines beside a proposed one. Markers stay.
  function applied(payload, overlay) {
    if (!overlay) return payload;
    return { ...payload, limits: overlay.limits || [], spans: overlay.spans || [] };
  }

  // The metric to draw: the one chosen, else ("auto") notional when every limit line is
  // a notional one, so a link to a notional rule's chart shows its line; amount without
  // notional data.
  function metricFor(limits, chosen, hasNotional) {
    const allNotional = limits.length > 0 && limits.every((l) => l.metric === "notional");
    const wanted = chosen === "auto" ? (allNotional ? "notional" : "amount") : chosen;
    return wanted === "notional" && hasNotional ? "notional" : "amount";
  }

  window.ChartOverlay = { plugin: overlayPlugin, applied, metricFor };
})();
