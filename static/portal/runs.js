// Request page: while a provisioning run is active, refresh its panel (steps, log) every 2 s;
// reload the whole page when it settles so the buttons match the new state.
(function () {
  function poll() {
    const panel = document.getElementById("runs-panel");
    if (!panel || panel.dataset.active !== "1") return;
    fetch(panel.dataset.url, { headers: { "X-Requested-With": "fetch" } })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        const box = document.createElement("div");
        box.innerHTML = html;
        const fresh = box.firstElementChild;
        const logs = panel.querySelectorAll("pre.log");
        panel.replaceWith(fresh);
        fresh.querySelectorAll("pre.log").forEach((pre, i) => {
          if (logs[i]) pre.scrollTop = pre.scrollHeight;
        });
        if (fresh.dataset.active !== "1") window.location.reload();
        else setTimeout(poll, 2000);
      })
      .catch(() => setTimeout(poll, 5000));
  }
  setTimeout(poll, 2000);
})();
