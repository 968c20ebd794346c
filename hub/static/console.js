// A second, deliberate step before forms that act on loudspeakers now (emergency, cancel).
// The server still demands its own confirmation field; this only guards against a stray tap.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.dataset ? form.dataset.confirm : null;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Parts of a page that keep themselves current (an emergency's progress, device by device):
// the element names a URL that answers with its new inner HTML. A lost session reloads the
// page, which then shows the login; a network blip just waits for the next tick.
for (const box of document.querySelectorAll("[data-refresh]")) {
  const every = Number(box.dataset.refreshSeconds || 5) * 1000;
  const tick = async () => {
    try {
      const response = await fetch(box.dataset.refresh, {
        credentials: "same-origin",
        redirect: "manual",
      });
      if (response.ok) {
        box.innerHTML = await response.text();
        box.dataset.refreshedAt = String(Date.now());
      } else if (response.type === "opaqueredirect" || response.status === 401) {
        window.location.reload();
        return;
      }
    } catch (error) {
      // Offline for a moment: the next tick tries again.
    }
    window.setTimeout(tick, every);
  };
  window.setTimeout(tick, every);
}
