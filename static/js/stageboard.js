// Small behaviours for the console. No inline scripts: the Content-Security-Policy forbids them.
(function () {
  "use strict";

  // Content loaded into the dialog opens it; its Close button or Escape closes it.
  document.addEventListener("htmx:afterSwap", function (event) {
    var dialog = document.getElementById("dialog");
    if (dialog && event.detail.target.id === "dialog-body" && !dialog.open) {
      dialog.showModal();
    }
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-close-dialog]")) {
      document.getElementById("dialog").close();
    }
  });

  // Keep the Tag & Deploy button in step with the number being typed.
  document.addEventListener("input", function (event) {
    var field = event.target;
    if (!field.matches || !field.matches("input[data-suggested]")) return;
    var button = document.getElementById("deploy-button");
    if (button && button.textContent.indexOf("Tag & Deploy") === 0) {
      button.textContent = "Tag & Deploy " + (field.value.trim() || field.dataset.suggested);
    }
  });

  // The editor: a refused edit's text has a "Copy your text" button (without JavaScript the text
  // is still there to select), and a file too large to save is stopped before it is sent.
  function showCopyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) { button.hidden = false; });
  }
  document.addEventListener("DOMContentLoaded", showCopyButtons);
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var field = document.getElementById(button.dataset.copy);
    field.select();
    if (navigator.clipboard) navigator.clipboard.writeText(field.value);
    button.textContent = "Copied";
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-max-bytes]")) return;
    var field = form.querySelector("textarea[name=content]");
    // The UTF-8 size with LF line breaks, as an LF file is saved; the server has the last word.
    var size = field ? new Blob([field.value]).size : 0;
    if (size > parseInt(form.dataset.maxBytes, 10)) {
      event.preventDefault();
      var note = form.querySelector(".too-large") || form.appendChild(document.createElement("p"));
      note.className = "too-large form-errors";
      note.setAttribute("role", "alert");
      note.textContent = "This file is " + Math.ceil(size / 1024) + " KB, over the limit of " +
        Math.floor(form.dataset.maxBytes / 1024) + " KB per file. Nothing was sent; your text is still here.";
    }
  });
})();
