// Refreshes the runs' progress, rate and ETA in the admin without a reload.
// The admin marks each refreshable value with
//   <span class="batchjobs-live" data-run="ID" data-field="progress|rate|eta|..."
//         data-live="1|0" data-url="...live/">
// and this script polls that URL every two seconds while any shown run is unfinished.
(function () {
  "use strict";
  var PERIOD_MS = 2000;

  function cells() {
    return Array.prototype.slice.call(document.querySelectorAll(".batchjobs-live"));
  }

  function liveIds() {
    var ids = {};
    cells().forEach(function (cell) {
      if (cell.dataset.live === "1") ids[cell.dataset.run] = true;
    });
    return Object.keys(ids);
  }

  function show(cell, values) {
    var field = cell.dataset.field;
    if (field === "progress") {
      var bar = cell.querySelector("progress");
      if (bar) {
        bar.value = values.percent;
        if (bar.nextSibling) bar.nextSibling.nodeValue = " " + values.progress;
      }
    } else if (field in values) {
      cell.textContent = values[field];
    }
    cell.dataset.live = values.live ? "1" : "0";
  }

  function poll() {
    var ids = liveIds();
    if (!ids.length) return; // nothing left to refresh: stop polling
    var url = cells()[0].dataset.url + "?ids=" + ids.join(",");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        cells().forEach(function (cell) {
          var values = data.runs[cell.dataset.run];
          if (values) show(cell, values);
        });
      })
      .catch(function () {
        // A failed poll (server restarting, session expired) is retried on the next tick.
      })
      .then(function () {
        window.setTimeout(poll, PERIOD_MS);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (liveIds().length) window.setTimeout(poll, PERIOD_MS);
  });
})();
