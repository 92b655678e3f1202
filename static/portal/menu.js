// The menu button of the header (templates/base.html): on a narrow screen the navigation folds
// behind it (portal.css, .menu-folds). Loaded in <head> without defer, so the class is there
// before the header is drawn (no flash of the unfolded navigation). Without this script the
// button stays hidden and the navigation wraps, so every page is still reachable.
(function () {
  "use strict";
  document.documentElement.classList.add("menu-folds");
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest(".topbar .menu-button") : null;
    if (!button) return;
    var open = button.closest(".topbar").classList.toggle("menu-open");
    button.setAttribute("aria-expanded", open ? "true" : "false");
  });
})();
