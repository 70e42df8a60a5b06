// Progressive touches only: every page works without this file.
// - compose forms post without a reload (fetch, JSON answer, files included), the new post
//   is put on top; a refusal's reason is shown on the form;
// - "Older posts" links load the next page in place when they scroll into view;
// - copy-link buttons appear only when the clipboard is available.
(function () {
  "use strict";
  function ready(fn) { if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn); }
  ready(function () {
    document.querySelectorAll("form[data-compose]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var msg = form.querySelector(".status-msg");
        fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                             headers: { "Accept": "application/json" } })
          .then(function (r) {
            // A refusal (422: the reason in the page's language) is shown on the form; any
            // other failure falls back to the plain form post, which shows its own page.
            return r.json().then(function (body) {
              if (r.ok) return body;
              return Promise.reject(body && body.error ? { shown: body.error } : r);
            }, function () { return Promise.reject(r); });
          })
          .then(function () { return fetch(location.pathname, { credentials: "same-origin" }); })
          .then(function (r) { return r.text(); })
          .then(function (html) {
            var doc = new DOMParser().parseFromString(html, "text/html");
            var fresh = doc.querySelector("[data-feed]"), feed = document.querySelector("[data-feed]");
            if (fresh && feed) feed.replaceWith(fresh);
            form.reset();
            if (msg) { msg.classList.remove("error"); msg.textContent = form.dataset.done || "✓"; }
          })
          .catch(function (err) {
            if (err && err.shown && msg) { msg.classList.add("error"); msg.textContent = err.shown; }
            else form.submit();
          });
      });
    });
    var more = document.querySelector("a[data-more]");
    if (more && "IntersectionObserver" in window) {
      var busy = false;
      var observer = new IntersectionObserver(function (entries) {
        if (!entries[0].isIntersecting || busy) return;
        busy = true;
        var link = document.querySelector("a[data-more]");
        fetch(link.href, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var feed = document.querySelector("[data-feed]");
          doc.querySelectorAll("[data-feed] > article").forEach(function (a) { feed.appendChild(document.adoptNode(a)); });
          var next = doc.querySelector("a[data-more]");
          if (next) { link.href = next.href; busy = false; } else { observer.disconnect(); link.parentNode.remove(); }
        });
      });
      observer.observe(more);
    }
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      if (!navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener("click", function () { navigator.clipboard.writeText(button.dataset.copy); });
    });
  });
})();
