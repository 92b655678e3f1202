// A button with data-confirm="question" asks before it submits its form. The portal's
// Content-Security-Policy runs no inline script, so no onclick="..." attribute: this listener
// does it for every page (templates/base.html loads it).
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-confirm]") : null;
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });
})();
