// The desk's few lines of hand-written JavaScript (no inline scripts: the CSP forbids them).
// - every htmx request carries the session's CSRF token in a header;
// - "Insert into reply" buttons put a recommended action's text into the reply box;
// - a message or note already on the page is not appended twice (it can come both in the answer to the
//   agent's own form and over the live socket);
// - `Desk.send(frame)` sends a JSON frame up the page's live socket (typing), when it is open;
// - an element with `data-expires-ms` (a typing indicator) empties itself after that long.
(function () {
  "use strict";

  var liveSocket = null;
  document.addEventListener("htmx:wsOpen", function (event) {
    liveSocket = event.detail.socketWrapper;
  });
  // Signed out (here, in another tab, or by an admin): the socket closes with 4401 and the page goes to the
  // login form. Any other close may be a lost session too (the handshake is refused then), so ask.
  var CLOSE_SIGNED_OUT = 4401;
  function toLogin() {
    window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
  }
  document.addEventListener("htmx:wsClose", function (event) {
    liveSocket = null;
    var code = event.detail && event.detail.event ? event.detail.event.code : 0;
    if (code === CLOSE_SIGNED_OUT) {
      toLogin();
      return;
    }
    fetch("/session", { credentials: "same-origin", cache: "no-store" }).then(function (response) {
      if (response.status === 401) {
        toLogin();
      }
    }, function () {});
  });
  window.Desk = {
    send: function (frame) {
      if (!liveSocket) {
        return false;
      }
      liveSocket.send(JSON.stringify(frame), document.getElementById("live"));
      return true;
    },
  };

  var expiring = new WeakMap();
  function armExpiry(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var found = Array.prototype.slice.call(scope.querySelectorAll("[data-expires-ms]"));
    if (scope.matches && scope.matches("[data-expires-ms]")) {
      found.push(scope);
    }
    found.forEach(function (element) {
      clearTimeout(expiring.get(element));
      var ms = parseInt(element.getAttribute("data-expires-ms"), 10) || 5000;
      expiring.set(element, setTimeout(function () {
        element.textContent = "";
      }, ms));
    });
  }
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    armExpiry(event.detail.target);
  });

  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = meta ? meta.getAttribute("content") : "";

  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken;
  });

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("button[data-insert]") : null;
    if (!button) {
      return;
    }
    var box = document.getElementById(button.getAttribute("data-target") || "");
    if (!box) {
      return; // no reply box: the viewer does not hold this conversation
    }
    var text = button.getAttribute("data-insert") || "";
    box.value = box.value.trim() ? box.value.replace(/\s*$/, "\n") + text : text;
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  });

  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var fragment = event.detail.fragment;
    if (!fragment || !fragment.children) {
      return;
    }
    Array.prototype.slice.call(fragment.children).forEach(function (child) {
      if (child.id && child.id !== event.detail.target.id && document.getElementById(child.id)) {
        child.remove();
      }
    });
  });
})();
