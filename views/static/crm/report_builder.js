/* The report builder (views/templates/crm/report_builder.html): when the record type
 * changes, the dimension and measure lists are rebuilt from the sources JSON in the page
 * (#report-sources: {key: {label, dimensions: [[key, label, sensitive]], measures: [[key,
 * label]]}}); a choice still offered by the new source stays selected. The two dimension
 * lists never offer the same dimension twice. The per-source filter selects
 * (.report-source-filters[data-source]) of the chosen source are shown and enabled, the
 * others hidden and disabled (a disabled select is not submitted). No request is made;
 * "Preview" submits. */
(function () {
  "use strict";
  var blob = document.getElementById("report-sources");
  var source = document.getElementById("source");
  if (!blob || !source) { return; }
  var sources = JSON.parse(blob.textContent || "{}");
  var dims = [document.getElementById("dimension1"), document.getElementById("dimension2")];
  var measure = document.getElementById("measure");

  function fill(select, items, keepFirst) {
    var chosen = select.value;
    while (select.options.length > (keepFirst ? 1 : 0)) { select.remove(select.options.length - 1); }
    items.forEach(function (item) {
      var option = document.createElement("option");
      option.value = item[0];
      option.textContent = item[1];
      select.appendChild(option);
    });
    select.value = chosen;
    if (select.value !== chosen || select.selectedIndex < 0) { select.selectedIndex = 0; }
  }

  function exclusive() {
    dims.forEach(function (select, index) {
      var other = dims[1 - index].value;
      Array.prototype.forEach.call(select.options, function (option) {
        option.disabled = option.value !== "" && option.value === other;
      });
    });
  }

  function showFilters() {
    var groups = document.querySelectorAll(".report-source-filters");
    Array.prototype.forEach.call(groups, function (group) {
      var current = group.getAttribute("data-source") === source.value;
      group.hidden = !current;
      Array.prototype.forEach.call(group.querySelectorAll(".report-filter"), function (input) {
        input.disabled = !current;
      });
    });
  }

  function refresh() {
    var chosen = sources[source.value] || {dimensions: [], measures: []};
    dims.forEach(function (select) { if (select) { fill(select, chosen.dimensions, true); } });
    if (measure) { fill(measure, chosen.measures.length ? chosen.measures : [["count", measure.dataset.count || "count"]], false); }
    exclusive();
    showFilters();
  }

  source.addEventListener("change", refresh);
  dims.forEach(function (select) { if (select) { select.addEventListener("change", exclusive); } });
  exclusive();
  showFilters();  /* a page restored by "Back" may show another record type than it was built for */
}());
