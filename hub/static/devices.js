// Device pages. The fleet table refreshes itself: every few seconds it fetches /devices/table
// (with the page's filters) and swaps the table in, so the page never reloads. An unattended
// page stops after a while, so the console's idle logout still happens; any input resumes it.
(() => {
  "use strict";
  const box = document.getElementById("fleet");
  if (!box || !box.dataset.refresh) {
    return;
  }
  const every = Math.max(5, Number(box.dataset.every) || 15) * 1000;
  const idleLimit = (Number(box.dataset.idle) || 0) * 1000;
  const paused = document.getElementById("fleet-paused");
  const stale = document.getElementById("fleet-stale");
  let lastInput = Date.now();
  let timer = null;
  let busy = false;

  async function refresh() {
    if (busy || document.hidden) {
      return;
    }
    if (idleLimit && Date.now() - lastInput > idleLimit) {
      pause();
      return;
    }
    busy = true;
    try {
      const response = await fetch(box.dataset.refresh, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      if (response.redirected) {
        // The session ended (idle, logout elsewhere): reloading shows the login page.
        window.location.reload();
        return;
      }
      if (!response.ok) {
        throw new Error(`HTTP ${response.status}`);
      }
      box.innerHTML = await response.text();
      if (stale) {
        stale.hidden = true;
      }
    } catch (_error) {
      if (stale) {
        stale.hidden = false;
      }
    } finally {
      busy = false;
    }
  }

  function start() {
    if (timer === null) {
      timer = window.setInterval(refresh, every);
    }
  }

  function pause() {
    window.clearInterval(timer);
    timer = null;
    if (paused) {
      paused.hidden = false;
    }
  }

  function resume() {
    lastInput = Date.now();
    if (paused) {
      paused.hidden = true;
    }
    if (timer === null) {
      start();
      refresh();
    }
  }

  for (const name of ["pointerdown", "keydown", "wheel", "touchstart"]) {
    window.addEventListener(name, resume, { passive: true });
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer !== null) {
      refresh();
    }
  });
  const resumeButton = document.getElementById("fleet-resume");
  if (resumeButton) {
    resumeButton.addEventListener("click", resume);
  }
  // A changed filter applies at once; the button stays for browsers without JavaScript.
  const filter = document.getElementById("fleet-filter");
  if (filter) {
    filter.addEventListener("change", () => filter.requestSubmit());
  }
  start();
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
