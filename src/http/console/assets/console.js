// Live alerts on a cohort page: server-sent events replace, add or remove
// rows of the alert table, and a status line tells screen readers.
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
  source.addEventListener("alert", function (event) {
    var change = JSON.parse(event.data);
    var old = document.getElementById("alert-" + change.id);
    if (old) old.remove();
    if (change.active) {
      rows.insertAdjacentHTML("afterbegin", change.html);
      rows.firstElementChild.classList.add("fresh");
    }
    empty.hidden = rows.children.length > 0;
    live.textContent = change.text;
  });
})();
