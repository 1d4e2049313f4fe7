// Live alerts on a cohort page: server-sent events replace, add or remove
// rows of the alert table, keep the heat map's count of open alerts per
// learner, and a status line tells screen readers.
(function () {
  var section = document.getElementById("alerts");
  if (!section || !window.EventSource) return;
  var rows = document.getElementById("alert-rows");
  var live = document.getElementById("live");
  var empty = document.getElementById("no-alerts");
  var source = new EventSource(section.dataset.events);
  source.addEventListener("open", function () {
    live.textContent = live.dataset.on;
    document.body.dataset.live = "on";
  });
  // A stream refused (429) or ended for good: EventSource stops; say so.
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      live.textContent = live.dataset.off;
      document.body.dataset.live = "off";
    }
  });
  source.addEventListener("alert", function (event) {
    var change = JSON.parse(event.data);
    var old = document.getElementById("alert-" + change.id);
    var delta = (change.active ? 1 : 0) - (old ? 1 : 0);
    if (old) old.remove();
    if (change.active) {
      rows.insertAdjacentHTML("afterbegin", change.html);
      rows.firstElementChild.classList.add("fresh");
    }
    if (delta !== 0) {
      var counts = document.querySelectorAll("td[data-alerts-of]");
      for (var i = 0; i < counts.length; i++) {
        if (counts[i].dataset.alertsOf === change.learner) {
          counts[i].textContent = Math.max(0, Number(counts[i].textContent) + delta);
        }
      }
    }
    empty.hidden = rows.children.length > 0;
    live.textContent = change.text;
  });
})();
