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
})();
