/* Run report: arrival timeline (characters received against time) and the gap before each event. */
(function () {
  "use strict";
  var d = SC.data;
  var pts = d.timeline || [];
  if (!pts.length) { return; }
  var maxChars = pts[pts.length - 1][1] || 1;
  var maxT = pts[pts.length - 1][0] || 1;
  var arrivals = pts.map(function (p) { return {x: p[0], y: p[1], chars: p[2], gap: p[3], offset: p[4]}; });
  var datasets = [{
    label: "characters received",
    data: arrivals,
    showLine: true,
    stepped: "before",
    borderColor: SC.color(0),
    backgroundColor: SC.color(0),
    borderWidth: 1.5,
    pointRadius: pts.length > 600 ? 1 : 2.5,
    order: 2
  }];
  if (typeof d.ttft_ms === "number") {
    datasets.push({
      label: "TTFT " + SC.fmt(d.ttft_ms) + " ms",
      data: [{x: d.ttft_ms, y: 0}, {x: d.ttft_ms, y: maxChars}],
      showLine: true, borderColor: SC.color(2), backgroundColor: SC.color(2), borderDash: [6, 4],
      borderWidth: 2, pointRadius: 0, order: 1
    });
  }
  if (typeof d.ttfb_ms === "number") {
    datasets.push({
      label: "first byte " + SC.fmt(d.ttfb_ms) + " ms",
      data: [{x: d.ttfb_ms, y: 0}, {x: d.ttfb_ms, y: maxChars}],
      showLine: true, borderColor: "#8a8f98", backgroundColor: "#8a8f98", borderDash: [2, 3],
      borderWidth: 1.5, pointRadius: 0, order: 1
    });
  }
  if (typeof d.largest_gap_at_ms === "number" && d.largest_gap_ms > 0) {
    var at = arrivals.filter(function (a) { return a.x === d.largest_gap_at_ms; })[0];
    if (at) {
      datasets.push({
        label: "longest gap " + SC.fmt(d.largest_gap_ms) + " ms (ends here)",
        data: [{x: at.x - d.largest_gap_ms, y: at.y - at.chars}, {x: at.x, y: at.y}],
        showLine: true, borderColor: SC.color(1), backgroundColor: SC.color(1), borderWidth: 3,
        pointRadius: [0, 5], order: 0
      });
    }
  }
  SC.chart("timeline-chart", {
    type: "scatter",
    data: {datasets: datasets},
    options: {
      scales: {
        x: {type: "linear", min: 0, suggestedMax: maxT, title: {display: true, text: "time since request (ms)"}},
        y: {type: "linear", min: 0, title: {display: true, text: "characters received"}}
      },
      plugins: {
        tooltip: {callbacks: {label: function (ctx) {
          var r = ctx.raw;
          if (r.offset === undefined) { return ctx.dataset.label; }
          return "t=" + SC.fmt(r.x) + " ms, +" + r.chars + " chars (total " + r.y + "), gap " + SC.fmt(r.gap) +
                 " ms, byte " + r.offset;
        }}}
      }
    }
  });
  SC.chart("gaps-chart", {
    type: "bar",
    data: {datasets: [{
      label: "gap before event (ms)",
      data: arrivals.map(function (a) { return {x: a.x, y: a.gap}; }),
      backgroundColor: arrivals.map(function (a) {
        return a.x === d.largest_gap_at_ms ? SC.color(1) : SC.color(0);
      }),
      barThickness: pts.length > 300 ? 1 : 3
    }]},
    options: {
      scales: {
        x: {type: "linear", offset: false, min: 0, suggestedMax: maxT,
            title: {display: true, text: "time since request (ms)"}},
        y: {min: 0, title: {display: true, text: "gap (ms)"}}
      },
      plugins: {legend: {display: false}}
    }
  });
})();
