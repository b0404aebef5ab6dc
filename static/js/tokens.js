// The page showing a new API token answers the form's POST, and keeps the token nowhere. Give the
// tab the list's address, so that reloading it shows the list instead of posting again (which
// would make a second token).
(function () {
  "use strict";
  var shown = document.querySelector("[data-list-url]");
  if (shown && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", shown.dataset.listUrl);
  }
})();
