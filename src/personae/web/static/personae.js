// personae's pages: draws each <canvas data-chart="ID"> from the Chart.js configuration in the
// JSON block <script type="application/json" id="ID"> that the server wrote (data, not code).
(function () {
  "use strict";
  function percent(value) { return Math.round(value * 1000) / 10 + "%"; }

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof Chart === "undefined") { return; }
    var spec = JSON.parse(source.textContent);
    var options = spec.options || {};
    options.responsive = true;
    options.maintainAspectRatio = false;
    options.animation = false;
    if (spec.percent) {
      options.scales = options.scales || {};
      options.scales.y = Object.assign({ min: 0, max: 1 }, options.scales.y || {});
      options.scales.y.ticks = { callback: percent };
      options.plugins = options.plugins || {};
      options.plugins.tooltip = {
        callbacks: {
          label: function (item) {
            var raw = item.raw;
            var shown = Array.isArray(raw) ? percent(raw[0]) + " to " + percent(raw[1])
              : (raw && typeof raw === "object" && "y" in raw) ? percent(raw.y) : percent(raw);
            return (item.dataset.label ? item.dataset.label + ": " : "") + shown;
          }
        }
      };
    }
    options.plugins = options.plugins || {};
    options.plugins.legend = {
      labels: { filter: function (item, data) { return !data.datasets[item.datasetIndex].legendHidden; } }
    };
    var chart = new Chart(canvas, { type: spec.type, data: spec.data, options: options });
    canvas.dataset.drawn = String(chart.data.datasets.length);
  }

  function ready() {
    var canvases = document.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) { draw(canvases[i]); }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", ready); } else { ready(); }
})();
