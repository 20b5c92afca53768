/* Bench report: throughput/latency against load, and per-level CDFs; a previous run is drawn dashed. */
(function () {
  "use strict";
  var d = SC.data;
  var cur = d.current.points, prev = d.previous ? d.previous.points : [];

  /* One x category per load level seen in either run, in numeric order when the levels are numbers. */
  var seen = {}, cats = [];
  cur.concat(prev).forEach(function (p) { if (!seen[p.x]) { seen[p.x] = p; cats.push(p); } });
  cats.sort(function (a, b) { return (a.sort === null ? 0 : a.sort) - (b.sort === null ? 0 : b.sort); });
  var labels = cats.map(function (c) { return c.x; });
  function aligned(points, key) {
    var by = {};
    points.forEach(function (p) { by[p.x] = p[key]; });
    return labels.map(function (x) { return by[x] === undefined ? null : by[x]; });
  }
  function lines(specs) {
    var out = [];
    specs.forEach(function (s, i) {
      out.push({label: s.label, data: aligned(cur, s.key), borderColor: SC.color(i), backgroundColor: SC.color(i),
                yAxisID: s.axis || "y", pointRadius: 3, spanGaps: true});
      if (prev.length) {
        out.push({label: s.label + " (previous)", data: aligned(prev, s.key), borderColor: SC.color(i),
                  backgroundColor: SC.color(i), borderDash: [6, 4], yAxisID: s.axis || "y", pointRadius: 2,
                  pointStyle: "rectRot", spanGaps: true});
      }
    });
    return out;
  }
  SC.chart("throughput-chart", {
    type: "line",
    data: {labels: labels, datasets: lines([
      {label: "requests/s", key: "requests_per_s"},
      {label: "goodput/s", key: "goodput_per_s"},
      {label: "output tokens/s", key: "output_tokens_per_s", axis: "y2"}
    ])},
    options: {
      plugins: {title: {display: true, text: "Throughput"}},
      scales: {
        x: {title: {display: true, text: d.x_title}},
        y: {beginAtZero: true, title: {display: true, text: "requests per second"}},
        y2: {beginAtZero: true, position: "right", grid: {drawOnChartArea: false},
             title: {display: true, text: "output tokens per second"}}
      }
    }
  });
  SC.chart("latency-chart", {
    type: "line",
    data: {labels: labels, datasets: lines([
      {label: "TTFT p50", key: "ttft_p50"}, {label: "TTFT p99", key: "ttft_p99"},
      {label: "e2e p50", key: "e2e_p50"}, {label: "e2e p99", key: "e2e_p99"}
    ])},
    options: {
      plugins: {title: {display: true, text: "Latency"}},
      scales: {x: {title: {display: true, text: d.x_title}},
               y: {beginAtZero: true, title: {display: true, text: "milliseconds"}}}
    }
  });

  /* CDFs: one colour per level (shared by both runs), the previous run dashed. */
  var levelColour = {};
  function colourOf(label) {
    if (levelColour[label] === undefined) { levelColour[label] = Object.keys(levelColour).length; }
    return SC.color(levelColour[label]);
  }
  function cdfChart(id, metric, title) {
    var series = d.cdf[metric];
    var datasets = [];
    series.current.forEach(function (s) {
      datasets.push({label: s.label, data: s.points.map(function (p) { return {x: p[0], y: p[1]}; }),
                     borderColor: colourOf(s.label), backgroundColor: colourOf(s.label), showLine: true,
                     stepped: "before", pointRadius: 0, borderWidth: 2});
    });
    series.previous.forEach(function (s) {
      datasets.push({label: s.label + " (previous)", data: s.points.map(function (p) { return {x: p[0], y: p[1]}; }),
                     borderColor: colourOf(s.label), backgroundColor: colourOf(s.label), showLine: true,
                     stepped: "before", pointRadius: 0, borderWidth: 1.5, borderDash: [6, 4]});
    });
    var maxSeen = 0;
    datasets.forEach(function (ds) { ds.data.forEach(function (p) { if (p.x > maxSeen) { maxSeen = p.x; } }); });
    var slo = d.slo ? d.slo[metric] : undefined;
    if (typeof slo === "number") {
      /* An SLO far beyond every value would squash the curves against the left edge: then it is only named. */
      var onScale = slo <= maxSeen * 1.5;
      datasets.push({label: "SLO " + SC.fmt(slo) + " ms" + (onScale ? "" : " (beyond the axis: all curves within)"),
                     data: onScale ? [{x: slo, y: 0}, {x: slo, y: 1}] : [], borderColor: "#444",
                     backgroundColor: "#444", showLine: true, pointRadius: 0, borderWidth: 1, borderDash: [2, 3]});
    }
    SC.chart(id, {
      type: "scatter",
      data: {datasets: datasets},
      options: {
        scales: {x: {type: "linear", title: {display: true, text: title + " (ms)"}},
                 y: {min: 0, max: 1, title: {display: true, text: "share at or below"}}},
        plugins: {tooltip: {callbacks: {label: function (ctx) {
          return ctx.dataset.label + ": " + SC.fmt(ctx.raw.x) + " ms at " + Math.round(ctx.raw.y * 100) + " %";
        }}}}
      }
    });
  }
  cdfChart("ttft-cdf", "ttft_ms", "TTFT");
  cdfChart("itl-cdf", "itl_ms", "ITL");
  cdfChart("e2e-cdf", "e2e_ms", "end to end");
})();
