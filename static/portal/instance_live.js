// Instance page: what Compute shows now, read after the page has loaded (a Compute read takes a
// moment; the page itself never waits for it). The fragment comes from /instances/<slug>/live/.
(function () {
  const box = document.getElementById("live-view");
  if (!box) return;
  fetch(box.dataset.url, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
    .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
    .then((html) => {
      box.innerHTML = html;
      box.dataset.state = "loaded";
    })
    .catch(() => {
      box.textContent = "Compute could not be read just now; reload the page to try again.";
      box.dataset.state = "failed";
    });
})();
