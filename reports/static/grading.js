/* Grading summary: score distribution and failures per check. */
(function () {
  "use strict";
  var d = SC.data;
  SC.chart("score-chart", {
    type: "bar",
    data: {
      labels: d.histogram.map(function (b) { return b.label; }),
      datasets: [{label: "submissions", data: d.histogram.map(function (b) { return b.count; }),
                  backgroundColor: d.histogram.map(function (b, i) {
                    return i === d.histogram.length - 1 ? SC.color(2) : SC.color(0);
                  })}]
    },
    options: {
      /* Every band labelled: Chart.js would drop every other label that does not fit; rotate them instead. */
      scales: {x: {ticks: {autoSkip: false, maxRotation: 90},
                   title: {display: true, text: "score (% of the maximum)"}},
               y: {beginAtZero: true, ticks: {precision: 0}, title: {display: true, text: "submissions"}}},
      plugins: {legend: {display: false}}
    }
  });
  /* One row per failing check, each labelled: the chart grows with the number of bars, since Chart.js skips
     the labels it cannot fit (leaving bars without a name) when many bars share a fixed height. */
  var ROW_PX = 22, AXES_PX = 70, MIN_PX = 300;  // a row fits a 12 px label with air; MIN_PX: .chart's height
  var failuresCanvas = document.getElementById("failures-chart");
  if (failuresCanvas) {
    var height = Math.max(MIN_PX, d.failures.length * ROW_PX + AXES_PX);
    failuresCanvas.parentNode.style.height = height + "px";
  }
  SC.chart("failures-chart", {
    type: "bar",
    data: {
      labels: d.failures.map(function (f) { return f.check; }),
      datasets: [{label: "submissions failing", data: d.failures.map(function (f) { return f.count; }),
                  backgroundColor: SC.color(1)}]
    },
    options: {
      indexAxis: "y",
      scales: {x: {beginAtZero: true, ticks: {precision: 0},
                   title: {display: true, text: "submissions failing"}},
               y: {ticks: {autoSkip: false}}},
      plugins: {legend: {display: false}}
    }
  });
})();
