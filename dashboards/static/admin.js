// The overview's live numbers: one EventSource on /admin/live; each message carries the four numbers and the
// tier counts, applied to the elements that show them (text and data-value), and the time in #last-update.
(function () {
  "use strict";
  if (!window.EventSource || !document.getElementById("active-now")) { return; }
  var numbers = { "active-now": "active_now", "active-today": "active_today", "active-week": "active_week",
                  "events-per-minute": "events_per_minute" };
  var format = new Intl.NumberFormat("en");
  function show(el, value) {
    el.setAttribute("data-value", value === null || value === undefined ? "" : String(value));
    el.textContent = value === null || value === undefined ? "–" : format.format(value);
  }
  function apply(message) {
    var data = JSON.parse(message.data);
    Object.keys(numbers).forEach(function (id) { show(document.getElementById(id), data[numbers[id]]); });
    document.querySelectorAll("#tier-counts [data-tier]").forEach(function (li) {
      show(li.querySelector("[data-value]"), data.tiers ? data.tiers[li.getAttribute("data-tier")] || 0 : null);
    });
    var alert = document.getElementById("live-error");
    if (data.error) {
      var strong = document.createElement("strong");
      strong.textContent = "This panel could not be loaded.";
      alert.replaceChildren(strong, document.createTextNode(" " + data.error));
      alert.hidden = false;
    }
    else { alert.hidden = true; }
    var stamp = document.getElementById("last-update");
    stamp.setAttribute("datetime", data.at);
    stamp.textContent = data.at.substring(11, 19) + " UTC";
  }
  // Open while the page is shown; closed when the person leaves it, so a page kept in the back/forward cache
  // does not hold a stream (and a server connection) open, and opened again if they come back to it.
  var source = null;
  function open() { if (!source) { source = new EventSource("/admin/live"); source.onmessage = apply; } }
  function close() { if (source) { source.close(); source = null; } }
  window.addEventListener("pagehide", close);
  window.addEventListener("pageshow", open);
  open();
})();
