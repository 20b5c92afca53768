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
      scales: {x: {title: {display: true, text: "score (share of the maximum)"}},
               y: {beginAtZero: true, ticks: {precision: 0}, title: {display: true, text: "submissions"}}},
      plugins: {legend: {display: false}}
    }
  });
  SC.chart("failures-chart", {
    type: "bar",
    data: {
      labels: d.failures.map(function (f) { return f.check; }),
      datasets: [{label: "submissions failing", data: d.failures.map(function (f) { return f.count; }),
                  backgroundColor: SC.color(1)}]
    },
    options: {
      indexAxis: "y",
      scales: {x: {beginAtZero: true, ticks: {precision: 0}, title: {display: true, text: "submissions failing"}}},
      plugins: {legend: {display: false}}
    }
  });
})();
