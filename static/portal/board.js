// The DevOps board's timers count down live.
//
// A calendar-time timer loses one second per second. A working-day timer only runs during
// working time, which the browser cannot judge (holidays, closures): the server says whether it
// is working time now and for how many seconds more (data-working-now, data-work-left), and
// working-day timers count down only then. Every minute the board reloads its data from the
// server, which puts every timer right again (and picks up a working day that has just begun).
(function () {
  "use strict";
  var REFRESH_MS = 60000;
  var loadedAt = performance.now();

  function span(seconds, working) {
    seconds = Math.abs(Math.trunc(seconds));
    var days = Math.floor(seconds / 86400), rest = seconds % 86400;
    var hours = Math.floor(rest / 3600), minutes = Math.floor((rest % 3600) / 60);
    var secs = rest % 60;
    if (working && days) {
      return days + (days === 1 ? " working day " : " working days ") + hours + " h";
    }
    hours += days * 24;
    if (hours) { return hours + " h " + minutes + " m " + secs + " s"; }
    if (minutes) { return minutes + " m " + secs + " s"; }
    return secs + " s";
  }

  function board() { return document.getElementById("board"); }

  function tick() {
    var root = board();
    if (!root) { return; }
    var elapsed = (performance.now() - loadedAt) / 1000;
    var workingNow = root.dataset.workingNow === "1";
    var workLeft = parseFloat(root.dataset.workLeft || "0");
    var timers = root.querySelectorAll(".timer[data-live]");
    for (var i = 0; i < timers.length; i++) {
      var el = timers[i];
      var start = parseFloat(el.dataset.remaining), target = parseFloat(el.dataset.target);
      if (isNaN(start) || isNaN(target) || target <= 0) { continue; }
      var working = el.dataset.working === "1";
      var ran = working ? (workingNow ? Math.min(elapsed, workLeft) : 0) : elapsed;
      var remaining = start - ran;
      var used = Math.min(100, Math.max(0, 100 * (target - remaining) / target));
      var status = remaining < 0 ? "breached" : (used >= 75 ? "at_risk" : "running");
      el.className = "timer timer-" + status;
      el.dataset.status = status;
      el.dataset.left = Math.trunc(remaining);
      el.querySelector(".timer-fill").setAttribute("width", used.toFixed(2));
      el.querySelector(".timer-track").setAttribute("aria-valuenow", Math.round(used));
      el.querySelector(".timer-text").textContent = remaining < 0
        ? "overdue by " + span(remaining, working)
        : span(remaining, working) + " left";
    }
  }

  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("board");
        var current = board();
        if (fresh && current) {
          current.replaceWith(fresh);
          loadedAt = performance.now();
          tick();
        }
      })
      .catch(function () { /* offline for a moment: keep counting, try again next minute */ });
  }

  tick();
  setInterval(tick, 1000);
  setInterval(refresh, REFRESH_MS);
})();
