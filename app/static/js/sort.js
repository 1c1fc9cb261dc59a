// Sortable tables: a table marked data-sortable sorts its body rows by a column when
// that column's header button is pressed (again: the other way). Each <th> says how
// its cells compare in data-sort ("text", or "decimal": exact decimal text, never
// rounded through a float), each cell holds the value in data-value; empty values go
// last either way. The header shows the order in aria-sort. The chosen order is
// kept per table id and applied again after a live refresh swaps the table in, and
// for the tab's session (sessionStorage), so a reload or the UTC switch keeps it.
(function () {
  "use strict";
  var STORE = "sort:" + window.location.pathname;
  var chosen = load(); // table id → {column, direction}
  var focusAfterSwap = null; // {table, column} of the header button focused before a swap

  function load() {
    try {
      return JSON.parse(window.sessionStorage.getItem(STORE)) || {};
    } catch (error) {
      return {}; // storage refused (private mode) or not ours: start from the server's order
    }
  }

  function save() {
    try {
      window.sessionStorage.setItem(STORE, JSON.stringify(chosen));
    } catch (error) {
      // Sorting still works for this page without storage.
    }
  }

  // -1, 0 or 1 for two plain decimal texts ("-12.50", "3", "0.0001"), exactly.
  function compareDecimals(a, b) {
    var negA = a.charAt(0) === "-";
    var negB = b.charAt(0) === "-";
    var x = split(negA ? a.slice(1) : a);
    var y = split(negB ? b.slice(1) : b);
    var zeroA = isZero(x);
    var zeroB = isZero(y);
    if (zeroA && zeroB) return 0;
    if (zeroA) return negB ? 1 : -1;
    if (zeroB) return negA ? -1 : 1;
    if (negA !== negB) return negA ? -1 : 1;
    var magnitude = compareMagnitudes(x, y);
    return negA ? -magnitude : magnitude;
  }

  function split(text) {
    var parts = text.split(".");
    return [parts[0].replace(/^0+/, ""), (parts[1] || "").replace(/0+$/, "")];
  }

  function isZero(parts) {
    return parts[0] === "" && parts[1] === "";
  }

  function compareMagnitudes(x, y) {
    if (x[0].length !== y[0].length) return x[0].length < y[0].length ? -1 : 1;
    if (x[0] !== y[0]) return x[0] < y[0] ? -1 : 1;
    var length = Math.max(x[1].length, y[1].length);
    var fx = x[1].padEnd(length, "0");
    var fy = y[1].padEnd(length, "0");
    return fx === fy ? 0 : fx < fy ? -1 : 1;
  }

  function compareTexts(a, b) {
    return a === b ? 0 : a < b ? -1 : 1;
  }

  function cellValue(row, column) {
    var cell = row.cells[column];
    return cell ? cell.dataset.value || "" : "";
  }

  function sortTable(table, column, direction) {
    var header = table.tHead.rows[0].cells[column];
    if (!header || !header.dataset.sort) return;
    var compare = header.dataset.sort === "decimal" ? compareDecimals : compareTexts;
    var sign = direction === "descending" ? -1 : 1;
    Array.prototype.forEach.call(table.tBodies, function (body) {
      var rows = Array.prototype.slice.call(body.rows);
      // The original position breaks ties, so equal values keep the server's order.
      var keyed = rows.map(function (row, index) {
        return { row: row, value: cellValue(row, column), index: index };
      });
      keyed.sort(function (a, b) {
        if (a.value === "" || b.value === "") {
          if (a.value !== b.value) return a.value === "" ? 1 : -1;
          return a.index - b.index;
        }
        return sign * compare(a.value, b.value) || a.index - b.index;
      });
      keyed.forEach(function (item) {
        body.appendChild(item.row);
      });
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell, index) {
      if (index === column) cell.setAttribute("aria-sort", direction);
      else cell.removeAttribute("aria-sort");
    });
  }

  function activate(root) {
    root.querySelectorAll("table[data-sortable]").forEach(function (table) {
      var order = table.id && chosen[table.id];
      if (!order || typeof order.column !== "number") return;
      sortTable(table, order.column, order.direction === "descending" ? "descending" : "ascending");
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("table[data-sortable] th button.sort");
    if (!button) return;
    var header = button.closest("th");
    var table = header.closest("table");
    var direction = header.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    sortTable(table, header.cellIndex, direction);
    if (table.id) {
      chosen[table.id] = { column: header.cellIndex, direction: direction };
      save();
    }
  });

  // A live refresh brings the rows (and headers) in the server's order: sort them again
  // before the browser paints, and give the keyboard focus back to the header it was on.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var active = document.activeElement;
    var header = active && active.matches("th button.sort") && active.closest("th");
    var table = header && header.closest("table[data-sortable]");
    focusAfterSwap = table && table.id && event.detail.elt.contains(table)
      ? { table: table.id, column: header.cellIndex }
      : null;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    activate(event.target);
    if (focusAfterSwap) {
      var table = document.getElementById(focusAfterSwap.table);
      var header = table && table.tHead.rows[0].cells[focusAfterSwap.column];
      var button = header && header.querySelector("button.sort");
      if (button) button.focus({ preventScroll: true });
      focusAfterSwap = null;
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    activate(document);
  });
})();
