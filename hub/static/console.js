// A second, deliberate step before forms that act on loudspeakers now (emergency, cancel).
// The server still demands its own confirmation field; this only guards against a stray tap.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.dataset ? form.dataset.confirm : null;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Parts of a page that keep themselves current (the fleet table, an emergency's progress):
// an element with data-refresh="URL" is replaced by what URL answers, every data-every
// seconds. An unattended page stops after data-idle seconds, so the console's idle logout
// still happens; any input resumes it. Optional notices, by element id: data-paused (shown
// while stopped), data-stale (shown while the last fetch failed), data-resume (a button).
// A lost session reloads the page, which then shows the login.
for (const box of document.querySelectorAll("[data-refresh]")) {
  const every = Math.max(1, Number(box.dataset.every) || 5) * 1000;
  const idleLimit = (Number(box.dataset.idle) || 0) * 1000;
  const byId = (id) => (id ? document.getElementById(id) : null);
  const paused = byId(box.dataset.paused);
  const stale = byId(box.dataset.stale);
  let lastInput = Date.now();
  let timer = null;
  let busy = false;

  const pause = () => {
    window.clearInterval(timer);
    timer = null;
    if (paused) {
      paused.hidden = false;
    }
  };

  const refresh = async () => {
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
      if (response.redirected || response.status === 401) {
        window.location.reload();
        return;
      }
      if (!response.ok) {
        throw new Error(`HTTP ${response.status}`);
      }
      box.innerHTML = await response.text();
      box.dataset.refreshedAt = String(Date.now());
      if (stale) {
        stale.hidden = true;
      }
    } catch (_error) {
      // Offline for a moment: say so, and the next tick tries again.
      if (stale) {
        stale.hidden = false;
      }
    } finally {
      busy = false;
    }
  };

  const start = () => {
    if (timer === null) {
      timer = window.setInterval(refresh, every);
    }
  };

  const resume = () => {
    lastInput = Date.now();
    if (paused) {
      paused.hidden = true;
    }
    if (timer === null) {
      start();
      refresh();
    }
  };

  for (const name of ["pointerdown", "keydown", "wheel", "touchstart"]) {
    window.addEventListener(name, resume, { passive: true });
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer !== null) {
      refresh();
    }
  });
  const resumeButton = byId(box.dataset.resume);
  if (resumeButton) {
    resumeButton.addEventListener("click", resume);
  }
  start();
}

// A secret typed for someone else (a temporary password) is hidden like any password; a
// button shows it on demand (to read it out) and another copies it (to send it).
document.addEventListener("click", (event) => {
  const button = event.target.closest ? event.target.closest("[data-reveal],[data-copy]") : null;
  if (!button) {
    return;
  }
  const input = document.getElementById(button.dataset.reveal || button.dataset.copy);
  if (!input) {
    return;
  }
  if (button.dataset.reveal) {
    const shown = input.type === "text";
    input.type = shown ? "password" : "text";
    button.setAttribute("aria-pressed", shown ? "false" : "true");
    button.textContent = shown ? button.dataset.show : button.dataset.hide;
  } else if (navigator.clipboard) {
    navigator.clipboard.writeText(input.value).then(() => {
      button.textContent = button.dataset.done;
    });
  }
});
