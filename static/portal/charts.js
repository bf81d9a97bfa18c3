/* Draws the portal's charts with the vendored Chart.js (static/portal/vendor, no CDN).
 *
 * Each <figure data-chart="ID"> holds a <script type="application/json" id="ID"> written by
 * Django's json_script filter: {type, title, unit, labels, datasets: [{label, data}]}. The same
 * numbers are in the figure's table (inside <details>), so the canvas is decorative for assistive
 * technology beyond its label: role="img" + aria-label naming the chart and pointing to the table.
 * Without JavaScript, or if Chart.js fails to load, the caption and the table remain.
 */
(function () {
  "use strict";

  // High-contrast palette (each ≥ 4.5:1 against white) that stays distinct for common colour-vision deficiencies.
  var COLORS = ["#0b5cad", "#b35900", "#1a7f37", "#8250df"];

  function draw(figure) {
    var source = document.getElementById(figure.getAttribute("data-chart"));
    var holder = figure.querySelector("[data-chart-canvas]");
    if (!source || !holder || typeof window.Chart === "undefined") return;
    var spec;
    try {
      spec = JSON.parse(source.textContent);
    } catch (e) {
      return;
    }
    var canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", spec.title + ". The numbers are in the table below the chart.");
    canvas.textContent = spec.title;
    holder.appendChild(canvas);

    var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    var suffix = spec.unit === "%" ? "%" : "";
    new window.Chart(canvas, {
      type: spec.type === "bar" ? "bar" : "line",
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (ds, i) {
          var color = COLORS[i % COLORS.length];
          return {
            label: ds.label,
            data: ds.data,
            borderColor: color,
            backgroundColor: spec.type === "bar" ? color : color + "33",
            borderWidth: 2,
            pointRadius: spec.labels.length > 45 ? 0 : 3,
            spanGaps: true,
            tension: 0.2,
          };
        }),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: reduceMotion ? false : { duration: 300 },
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { display: spec.datasets.length > 1, labels: { color: "#1b1f24" } },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var v = ctx.parsed.y;
                return ctx.dataset.label + ": " + (v === null || v === undefined ? "—" : v + suffix);
              },
            },
          },
        },
        scales: {
          x: { ticks: { color: "#57606a", autoSkip: true, maxRotation: 0 }, grid: { display: false } },
          y: {
            beginAtZero: true,
            ticks: {
              color: "#57606a",
              precision: 0,
              callback: function (value) {
                return value + suffix;
              },
            },
          },
        },
      },
    });
  }

  function init() {
    var figures = document.querySelectorAll("figure[data-chart]");
    for (var i = 0; i < figures.length; i++) draw(figures[i]);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
