/* Dashboard and report charts (issue 17) with the vendored Apache ECharts.
 *
 * window.CrmCharts.render(el, figure, options) draws one figure (metrics.Figure.as_dict():
 * chart "bar" | "line" | "pie" | "funnel", categories, series [{name, values}], unit,
 * units (one per series, views/dashboards.figure_json, else each series' own unit: a second unit gets
 * a right-hand axis),
 * links) into el (options: {locale, renderer}); a click on a bar, point or slice follows figure.links[i] (same-site
 * paths only). On load every .crm-chart is drawn from the JSON <script> its data-figure
 * names. Locale: the container's data-locale, else "ZH" when <html lang> is zh, else "EN". Charts follow the window's size.
 */
(function () {
  "use strict";
  var charts = [];

  function localeOf(el) {
    var given = el && el.getAttribute("data-locale");
    if (given === "ZH" || given === "EN") { return given; }
    var lang = (document.documentElement.getAttribute("lang") || "").toLowerCase();
    return lang.indexOf("zh") === 0 ? "ZH" : "EN";
  }
  function number(value) {
    return value === null || value === undefined || value === "" ? null : Number(value);
  }
  function formatter(unit) {
    return function (value) {
      if (value === null || value === undefined || isNaN(value)) { return ""; }
      if (unit === "money") {
        return Number(value).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
      }
      if (unit === "percent") { return Number(value).toFixed(1) + "%"; }
      if (unit === "days") { return Number(value).toFixed(1); }
      return Number(value).toLocaleString("en-US");
    };
  }
  /* An axis label: money and counts without decimals, large numbers shortened (1.2M / 120万). */
  function axisFormatter(unit, locale) {
    return function (value) {
      if (unit === "percent") { return Number(value).toFixed(0) + "%"; }
      var n = Number(value), abs = Math.abs(n);
      if (locale === "ZH") {
        if (abs >= 1e8) { return trim(n / 1e8) + "亿"; }
        if (abs >= 1e4) { return trim(n / 1e4) + "万"; }
      } else {
        if (abs >= 1e9) { return trim(n / 1e9) + "B"; }
        if (abs >= 1e6) { return trim(n / 1e6) + "M"; }
        if (abs >= 1e4) { return trim(n / 1e3) + "K"; }
      }
      return unit === "days" ? n.toFixed(1) : n.toLocaleString("en-US", {maximumFractionDigits: 0});
    };
  }
  function trim(n) { return String(Number(n.toFixed(1))); }
  function safeLink(link) {
    return typeof link === "string" && link.charAt(0) === "/" && link.charAt(1) !== "/" && link.charAt(1) !== "\\";
  }
  /* Category labels: rotated when there are many or long ones, cut to 14 characters with "…"
     (the full name is in the tooltip and in the table under the chart). */
  function categoryLabel(categories, el) {
    var longest = categories.reduce(function (m, c) { return Math.max(m, String(c).length); }, 0);
    var width = (el && el.clientWidth) || 500;
    var crowded = categories.length * Math.min(longest, 14) * 7 > width * 0.8;
    return {interval: 0, rotate: crowded ? 30 : 0, hideOverlap: false, width: crowded ? 110 : Math.max(60, width / Math.max(categories.length, 1) - 8),
            overflow: "truncate", ellipsis: "…"};
  }

  function optionOf(figure, el, locale) {
    var units = figure.units || [];
    var unitOf = function (i) { return units[i] || ((figure.series || [])[i] || {}).unit || figure.unit; };
    var fmt = formatter(figure.unit);
    var categories = figure.categories || [];
    var series = figure.series || [];
    var tooltip = {trigger: "item", valueFormatter: fmt, confine: true};
    if (figure.chart === "pie" || figure.chart === "funnel") {
      var first = series[0] || {name: figure.title, values: []};
      var data = categories.map(function (name, i) { return {name: name, value: number(first.values[i])}; });
      var one = figure.chart === "pie"
        ? {type: "pie", name: first.name, radius: ["35%", "60%"], center: ["50%", "45%"], data: data,
           label: {formatter: "{b}: {d}%", width: 120, overflow: "truncate"}}
        : {type: "funnel", name: first.name, sort: "none", gap: 2, data: data, left: "10%", width: "80%", top: 8, bottom: 8,
           minSize: "20%", label: {position: "inside", formatter: "{b}: {c}", textBorderWidth: 0, color: "#fff"}};
      return {tooltip: tooltip, legend: {type: "scroll", bottom: 0, show: figure.chart === "pie"}, series: [one]};
    }
    /* a second unit (a count beside an amount, a % beside a count) gets its own axis on the right */
    var axisUnits = [];
    series.forEach(function (s, i) { if (axisUnits.indexOf(unitOf(i)) < 0) { axisUnits.push(unitOf(i)); } });
    axisUnits = axisUnits.slice(0, 2);
    var label = categoryLabel(categories, el);
    return {
      tooltip: {trigger: "axis", confine: true, axisPointer: {type: "shadow"},
                formatter: function (items) {
                  var lines = [echarts.format.encodeHTML(items.length ? items[0].axisValueLabel : "")];
                  items.forEach(function (it) {
                    lines.push(it.marker + echarts.format.encodeHTML(it.seriesName) + ": <b>" +
                               formatter(unitOf(it.seriesIndex))(it.value) + "</b>");
                  });
                  return lines.join("<br>");
                }},
      legend: {type: "scroll", bottom: 0, show: series.length > 1},
      grid: {left: 8, right: 16, top: 16, bottom: series.length > 1 ? 40 : 16, containLabel: true},
      xAxis: {type: "category", data: categories, axisLabel: label, axisTick: {alignWithLabel: true}},
      yAxis: axisUnits.map(function (unit, i) {
        var axis = {type: "value", axisLabel: {formatter: axisFormatter(unit, locale)}, splitLine: {show: i === 0}};
        if (unit === "count") { axis.minInterval = 1; }  /* no "0, 1, 1, 2, 2" ticks for whole numbers */
        if (unit === "percent") { axis.max = function (v) { return Math.max(100, Math.ceil(v.max / 10) * 10); }; }
        return axis;
      }),
      series: series.map(function (s, i) {
        return {type: figure.chart === "line" ? "line" : "bar", name: s.name, data: s.values.map(number),
                yAxisIndex: Math.max(axisUnits.indexOf(unitOf(i)), 0), barMaxWidth: 48,
                emphasis: {focus: "series"}, cursor: (figure.links || []).length ? "pointer" : "default"};
      })
    };
  }

  function render(el, figure, options) {
    if (typeof echarts === "undefined" || !el || !figure) { return null; }
    var locale = (options && options.locale) || localeOf(el);
    var chart = echarts.getInstanceByDom(el) ||
      echarts.init(el, null, {locale: locale, renderer: (options && options.renderer) || "canvas"});
    var option = optionOf(figure, el, locale);
    option.animationDuration = 300;  /* a short grow-in: a bar is where it will stay almost at once */
    chart.setOption(option, true);
    chart.off("click");
    chart.on("click", function (params) {
      var link = (figure.links || [])[params.dataIndex];
      if (safeLink(link)) { window.location.assign(link); }
    });
    if (charts.indexOf(chart) < 0) { charts.push(chart); }
    return chart;
  }

  function renderAll(root) {
    (root || document).querySelectorAll(".crm-chart[data-figure]").forEach(function (el) {
      var source = document.getElementById(el.getAttribute("data-figure"));
      if (!source) { return; }
      try { render(el, JSON.parse(source.textContent)); } catch (e) { /* a bad figure leaves its table */ }
    });
  }

  var pending = null;
  window.addEventListener("resize", function () {
    if (pending) { window.clearTimeout(pending); }
    pending = window.setTimeout(function () { charts.forEach(function (c) { c.resize(); }); }, 100);
  });

  window.CrmCharts = {render: render, renderAll: renderAll};
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { renderAll(); });
  } else {
    renderAll();
  }
}());
