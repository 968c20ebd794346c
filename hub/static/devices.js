// The fleet table refreshes itself through console.js (data-refresh). A changed filter
// applies at once; the button stays for browsers without JavaScript.
(() => {
  "use strict";
  const filter = document.getElementById("fleet-filter");
  if (filter) {
    filter.addEventListener("change", () => filter.requestSubmit());
  }
})();

// The new-device form offers only the hardware profiles of the chosen kind (the hub checks
// the pair again; this only saves a round trip).
(() => {
  "use strict";
  const form = document.getElementById("new-device-form");
  if (!form) {
    return;
  }
  const profile = form.elements.namedItem("profile");
  function match() {
    const kind = form.elements.namedItem("kind").value;
    for (const option of profile.options) {
      const other = Boolean(option.dataset.kind) && option.dataset.kind !== kind;
      option.hidden = other;
      option.disabled = other;
      if (other && option.selected) {
        profile.value = "";
      }
    }
  }
  form.addEventListener("change", (event) => {
    if (event.target.name === "kind") {
      match();
    }
  });
  match();
})();
