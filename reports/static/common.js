/* streamconform reports: helpers shared by every page script. Data comes only from the #report-data JSON block;
   strings from it are only ever placed with textContent or handed to Chart.js (which draws text on a canvas),
   never parsed as HTML. */
(function () {
  "use strict";
  var SC = (window.SC = {});
  SC.data = JSON.parse(document.getElementById("report-data").textContent);
  SC.palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                "#7f7f7f", "#bcbd22"];
  SC.color = function (i) { return SC.palette[i % SC.palette.length]; };
  SC.charts = [];

  if (window.Chart) {
    Chart.defaults.animation = false;          // drawn once, at load: screenshots and tests see the final chart
    Chart.defaults.maintainAspectRatio = false; // the .chart container sets the height
    Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    Chart.defaults.plugins.legend.labels.boxWidth = 14;
  }

  /* Draw a chart into the canvas with this id, if the page has it. */
  SC.chart = function (id, config) {
    var canvas = document.getElementById(id);
    if (!canvas || !window.Chart) { return null; }
    var chart = new Chart(canvas, config);
    SC.charts.push(chart);
    return chart;
  };

  SC.fmt = function (v, digits) {
    if (v === null || v === undefined || typeof v !== "number" || !isFinite(v)) { return "\u2014"; }
    if (Math.abs(v) >= 1000) { return Math.round(v).toLocaleString("en-US"); }
    return String(Number(v.toPrecision(digits || 3)));
  };

  /* Click a header to sort by that column; numbers compare as numbers (td data-sort carries the raw value). */
  function cellKey(row, index, numeric) {
    var cell = row.cells[index];
    if (!cell) { return numeric ? -Infinity : ""; }
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (!numeric) { return raw.toLowerCase(); }
    var n = parseFloat(raw);
    return isNaN(n) ? -Infinity : n;
  }
  SC.sortable = function (table) {
    var headers = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(headers, function (th, index) {
      th.setAttribute("tabindex", "0");
      var sort = function () {
        var numeric = th.getAttribute("data-type") === "num";
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellKey(a, index, numeric), y = cellKey(b, index, numeric);
          var c = x < y ? -1 : x > y ? 1 : 0;
          return ascending ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
  };
  document.querySelectorAll("table.sortable").forEach(SC.sortable);

  /* Tests and screenshots wait for this: every script ran and every chart is drawn. */
  window.addEventListener("load", function () {
    document.body.setAttribute("data-charts", String(SC.charts.length));
    document.body.setAttribute("data-ready", "1");
  });
})();
