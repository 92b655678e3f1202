// New-request form: suggest a machine type from users and repositories, flag a non-standard
// request (too large, or a reason ticked), show the IP ranges only for an allowlist, and offer
// known instance slugs.
(function () {
  const form = document.querySelector(".request-form");
  if (!form) return;
  const data = JSON.parse(document.getElementById("sizing-data").textContent);
  const kind = form.dataset.kind;
  const instance = form.querySelector("#id_instance");
  if (instance && kind !== "create") instance.setAttribute("list", "instance-slugs");
  const users = form.querySelector("#id_users");
  const repos = form.querySelector("#id_repositories");
  const access = form.querySelector("#id_access");
  const machine = form.querySelector("#id_machine_type");
  const ranges = document.getElementById("field-allowed_ip_ranges");
  function recommend() {
    const u = parseInt(users && users.value, 10) || 0;
    const r = parseInt(repos && repos.value, 10) || 0;
    let pick = data.sizing[data.sizing.length - 1][0];
    for (const [type, maxUsers, maxRepos] of data.sizing) {
      if (u <= maxUsers && r <= maxRepos) { pick = type; break; }
    }
    const shown = document.getElementById("recommended-type");
    if (shown) shown.textContent = pick;
    estimate(pick);
    flagNonStandard(u > data.max_users || r > data.max_repositories);
  }
  // The rule of docs/workflow.md: any reason ticked, or a size above the largest machine (the
  // form then adds "scale"), sends the request through Tech Review. The badge says which.
  function flagNonStandard(tooLarge) {
    const warn = document.getElementById("scale-warning");
    if (!warn) return;
    const reasons = Array.from(form.querySelectorAll("input[name=non_standard_reasons]:checked"))
      .map((box) => box.value);
    if (tooLarge && !reasons.includes("scale")) reasons.push("scale");
    warn.hidden = reasons.length === 0;
    warn.textContent =
      (tooLarge ? "above " + data.max_users.toLocaleString("en-US") + " users or " +
        data.max_repositories.toLocaleString("en-US") + " repositories: " : "") +
      "non-standard (" + reasons.join(", ") + "), goes to Tech Review";
  }
  // The fleet's and the instance page's formula (provisioning.models.monthly_cost): the machine
  // type's price plus storage plus network, for the type chosen or else the recommended one.
  function estimate(recommended) {
    const out = document.getElementById("cost-estimate");
    if (!out || !data.machine_usd) return;
    const chosen = machine && machine.value ? machine.value : recommended;
    const price = data.machine_usd[chosen] || 0;
    const total = price + data.storage_usd + data.network_usd;
    const usd = (n) => "$" + n.toLocaleString("en-US");
    out.textContent = usd(total);
    const parts = document.getElementById("cost-parts");
    if (parts) parts.textContent = "(" + chosen + " " + usd(price) + " + storage " +
      usd(data.storage_usd) + " + network " + usd(data.network_usd) + ")";
  }
  function toggleRanges() {
    if (ranges && access) ranges.hidden = access.value !== "ip_allowlist";
  }
  [users, repos].forEach((el) => el && el.addEventListener("input", recommend));
  form.querySelectorAll("input[name=non_standard_reasons]").forEach((box) =>
    box.addEventListener("change", recommend)
  );
  if (access) access.addEventListener("change", toggleRanges);
  if (machine) machine.addEventListener("change", recommend);
  recommend();
  toggleRanges();
})();
