// jobsched dashboard: draws each attempt's memory chart (uPlot) from the JSON beside it, on load and
// after every htmx swap. Sets data-drawn="1" and data-points=N on the figure once drawn.
(function () {
  "use strict";
  var COLORS = { usage: "#2456c8", limit: "#c62828", request: "#b26a00", estimate: "#1a7f37",
                 recommended: "#7b3fb8", oom: "#c62828" };

  function constant(n, v) { var a = new Array(n); for (var i = 0; i < n; i++) a[i] = v; return a; }

  function chart(fig) {
    var src = fig.querySelector("script.mem-data");
    var target = fig.querySelector(".plot");
    if (!src || !target || typeof uPlot === "undefined") return;
    var d = JSON.parse(src.textContent);
    var t = d.t.slice(), n = t.length;
    var data = [t, d.usage.slice()];
    var series = [{ label: "seconds" },
      { label: "usage (MiB)", stroke: COLORS.usage, width: 2, fill: "rgba(36,86,200,0.08)" }];
    var lines = [["limit", "limit"], ["request", "request"], ["estimate", "estimate"],
                 ["recommended", "history recommendation"]];
    lines.forEach(function (l) {
      if (d[l[0]] == null) return;
      data.push(constant(n, d[l[0]]));
      series.push({ label: l[1] + " (MiB)", stroke: COLORS[l[0]], width: 1.5,
                    dash: l[0] === "limit" ? null : [6, 4], points: { show: false } });
    });
    if (d.oom_at != null) {  // one marker where the OOM kill struck, at the limit
      var at = 0;
      for (var i = 0; i < n; i++) if (Math.abs(t[i] - d.oom_at) < Math.abs(t[at] - d.oom_at)) at = i;
      var y = d.limit != null ? d.limit : d.usage[at];
      var marks = constant(n, null); marks[at] = y;
      data.push(marks);
      series.push({ label: "OOM kill", stroke: COLORS.oom, width: 0, paths: function () { return null; },
                    points: { show: true, size: 12, fill: COLORS.oom, stroke: COLORS.oom } });
      fig.dataset.oom = "1";
    }
    // A measuring retry's limit is the node's free memory: far above the usage, it would flatten the
    // chart, so the y axis then stops above the other lines and the caption says where the limit is.
    var others = Math.max.apply(null, d.usage.concat([d.request || 0, d.estimate || 0, d.recommended || 0]));
    var top = d.limit != null && d.limit <= 2.5 * others ? Math.max(others, d.limit) : others;
    if (d.limit != null && d.limit > top) {
      var note = document.createElement("p");
      note.className = "note off-chart";
      note.textContent = "limit " + Math.round(d.limit) + " MiB is above the chart";
      target.parentNode.insertBefore(note, target.nextSibling);
    }
    var width = Math.max(320, Math.min(target.clientWidth || 560, 900));
    target.textContent = "";
    new uPlot({ width: width, height: 240, series: series, legend: { live: false },
                scales: { x: { time: false }, y: { range: [0, Math.max(1, top * 1.15)] } },
                axes: [{ label: "seconds since start" }, { label: "MiB", size: 60 }] }, data, target);
    fig.dataset.points = String(n);
    fig.dataset.drawn = "1";
  }

  function drawAll(root) {
    var figs = (root || document).querySelectorAll ? (root || document).querySelectorAll("figure.mem-chart") : [];
    for (var i = 0; i < figs.length; i++) if (!figs[i].dataset.drawn) chart(figs[i]);
  }

  function ready() {
    drawAll(document);
    if (typeof htmx !== "undefined") htmx.onLoad(function (el) { drawAll(el.parentNode || el); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
