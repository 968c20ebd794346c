// A second, deliberate step before forms that act on loudspeakers now (emergency, cancel).
// The server still demands its own confirmation field; this only guards against a stray tap.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.dataset ? form.dataset.confirm : null;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
