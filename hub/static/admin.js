// Admin pages: add and remove broadcast-window rows without a round trip.
// Without JavaScript the form still works: an empty row adds a window, clearing a row removes
// it, and the server validates every row either way.
(function () {
  "use strict";

  function removeRow(button) {
    const row = button.closest(".window-row");
    if (!row) {
      return;
    }
    const list = row.parentElement;
    row.remove();
    const first = list && list.querySelector("input");
    if (first) {
      first.focus();
    }
  }

  function addRow(kind) {
    const template = document.getElementById("row-template-" + kind);
    const list = document.getElementById("rows-" + kind);
    if (!template || !list) {
      return;
    }
    const row = template.content.firstElementChild.cloneNode(true);
    list.appendChild(row);
    const input = row.querySelector("input");
    if (input) {
      input.focus();
    }
  }

  function enhance() {
    document.querySelectorAll("[data-add-row], [data-remove-row]").forEach((button) => {
      button.hidden = false;
    });
    document.querySelectorAll(".no-js-hint").forEach((hint) => {
      hint.hidden = true;
    });
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) {
      return;
    }
    const add = target.closest("[data-add-row]");
    if (add) {
      event.preventDefault();
      addRow(add.getAttribute("data-add-row"));
      return;
    }
    const remove = target.closest("[data-remove-row]");
    if (remove) {
      event.preventDefault();
      removeRow(remove);
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", enhance);
  } else {
    enhance();
  }
})();
