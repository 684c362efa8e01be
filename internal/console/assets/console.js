// contactrelay console: the one script. It follows a replay's progress
// through server-sent events; every page works without it (a replay's
// page then reloads itself every two seconds).
(function () {
  "use strict";
  // Times written "12s ago" move on while the page is open.
  function ago(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) { return s + "s ago"; }
    if (s < 3600) { return Math.floor(s / 60) + "m ago"; }
    if (s < 48 * 3600) { return Math.floor(s / 3600) + "h ago"; }
    return Math.floor(s / 86400) + "d ago";
  }
  var times = document.querySelectorAll("time[datetime]");
  if (times.length) {
    setInterval(function () {
      times.forEach(function (el) {
        var t = Date.parse(el.getAttribute("datetime"));
        if (!isNaN(t)) { el.textContent = ago(Date.now() - t); }
      });
    }, 1000);
  }
  var job = document.getElementById("job");
  if (!job || job.getAttribute("data-over") === "true" || !window.EventSource) {
    return;
  }
  function set(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = String(text); }
  }
  function list(id, items) {
    var ul = document.getElementById(id);
    if (!ul) { return; }
    while (ul.firstChild) { ul.removeChild(ul.firstChild); }
    items.forEach(function (text) {
      var li = document.createElement("li");
      li.textContent = text;
      ul.appendChild(li);
    });
  }
  var es = new EventSource(job.getAttribute("data-events"));
  es.onmessage = function (e) {
    var s = JSON.parse(e.data);
    var bar = document.getElementById("job-progress");
    if (bar) { bar.max = Math.max(s.total, 1); bar.value = s.done; }
    set("job-phase", s.phase);
    set("job-done", s.done);
    set("job-total", s.total);
    set("job-replayed", s.replayed);
    set("job-already", s.alreadySent); set("job-refused", s.refused);
    set("job-skipped", s.skipped);
    set("job-failed", s.failed);
    set("job-error", s.error || "");
    list("job-reasons", Object.keys(s.reasons || {}).map(function (k) { return s.reasons[k] + " skipped: " + k; }));
    list("job-errors", s.errors || []);
    if (s.over) {
      es.close();
      job.setAttribute("data-over", "true");
      // Over: nothing left to stop.
      var cancel = document.getElementById("cancel-job");
      if (cancel && cancel.form) { cancel.form.parentNode.removeChild(cancel.form); }
    }
  };
  es.onerror = function () {
    if (job.getAttribute("data-over") === "true") { es.close(); }
  };
})();
