// Small behaviours for the console. No inline scripts: the Content-Security-Policy forbids them.
(function () {
  "use strict";

  // Content loaded into the dialog opens it; its Close button or Escape closes it.
  // A history restore (the Back button) swaps the body with no target in its details: a throw
  // here would stop htmx half way and leave the page blank.
  document.addEventListener("htmx:afterSwap", function (event) {
    var dialog = document.getElementById("dialog");
    var target = event.detail && event.detail.target;
    if (dialog && target && target.id === "dialog-body" && !dialog.open) {
      dialog.showModal();
    }
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-close-dialog]")) {
      document.getElementById("dialog").close();
    }
  });

  // While the plan needs "Deploy anyway" and it is not ticked, the deploy button is disabled. The
  // server refuses such a deployment all the same; without JavaScript the button stays enabled.
  function syncDeployButtons() {
    document.querySelectorAll("#deploy-form[data-needs-confirmation]").forEach(function (form) {
      var button = form.querySelector("#deploy-button");
      var anyway = form.querySelector("input[name=deploy_anyway]");
      if (!button) return;
      button.disabled = !(anyway && anyway.checked);
      button.title = !button.disabled ? "" : anyway ? "Tick “Deploy anyway” first" : "Only full access may deploy anyway";
    });
  }
  document.addEventListener("DOMContentLoaded", syncDeployButtons);
  document.addEventListener("htmx:load", syncDeployButtons);
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("input[name=deploy_anyway]")) syncDeployButtons();
  });

  // A running deployment's timer ticks by itself: between polls of its log and while a poll is slow.
  // The server renders the seconds elapsed; this adds the time since, in duration_label's words.
  function duration(seconds) {
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 60) return Math.round(seconds) + " s";
    var total = Math.round(seconds);
    var minutes = Math.floor(total / 60);
    if (minutes < 60) return minutes + " min " + (total % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }
  function tickTimers() {
    var now = Date.now();
    document.querySelectorAll(".running-timer[data-elapsed]").forEach(function (timer) {
      if (!timer.shownAt) timer.shownAt = now;
      timer.textContent = duration(parseFloat(timer.dataset.elapsed) + (now - timer.shownAt) / 1000);
    });
  }
  setInterval(tickTimers, 1000);

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

// Conditional refresh (lifecycle/refresh.py). A refreshing region ([data-refresh]) sends the revision
// it shows and the hash of each part it shows; the server answers 204 when nothing changed, else
// only the parts that did. Polling ([data-poll]) pauses while the tab is hidden and checks at once
// when it is shown again.
(function () {
  "use strict";

  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-refresh")) return;
    var shown = elt.querySelector("[data-revision]");
    var parts = [];
    elt.querySelectorAll("[data-hash]").forEach(function (part) {
      parts.push(part.id + ":" + part.dataset.hash);
    });
    event.detail.parameters["revision"] = shown ? shown.dataset.revision : "";
    event.detail.parameters["parts"] = parts.join(",");
  });
  // A running deployment's log ([data-log]) asks only for the lines after the last one it shows.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-log") || event.detail.verb !== "get") return;
    var lines = elt.querySelectorAll("[data-line]");
    event.detail.parameters["log_after"] = lines.length ? lines[lines.length - 1].dataset.line : "0";
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (document.hidden && elt && elt.hasAttribute && elt.hasAttribute("data-poll")) {
      event.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !window.htmx) return;
    document.querySelectorAll("[data-poll]").forEach(function (elt) {
      window.htmx.trigger(elt, "refresh-now");
    });
  });
})();
