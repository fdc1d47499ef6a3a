// The queue page (templates/desk.html). No inline code: the CSP forbids it.
// - Times tick: every `time[data-tick]` is rewritten each second from its `datetime` attribute, and an SLA
//   countdown takes its colour class from its `datetime` (the deadline) and its item's waiting time (the start),
//   with the same rules as desk/web/components/queue.py (which renders the first text and class, so the page is
//   right without JavaScript). Nothing asks the server.
// - Claim: a POST to the conversation's claim route with the page's CSRF token. Won: the browser opens the
//   conversation. Lost: the flash says who won, and the item leaves the queue by itself over the socket. This is a
//   fetch rather than hx-post because a live push can replace the item while the request is in flight, and htmx
//   drops the answer to a request whose element has left the page.
// - Keyboard: j/k move between items, Enter opens, c claims the focused item, n opens the top of this (filtered)
//   queue, ? shows the list. Ignored while typing in a field, and with Ctrl, Alt or Meta held.
// - After a push replaced the queue, the focused item keeps focus (or the one now in its place), and a changed count
//   is announced by a live region outside the replaced queue (a region inserted afresh is not read out).
// - Choosing a skill reloads the page filtered by it, which also reconnects the socket with the same filter.
(function () {
  "use strict";

  var MINUTE_S = 60;
  var HOUR_S = 3600;
  var DAY_S = 86400;
  var SLA_OK_SHARE = 0.5;
  var SLA_CLASSES = ["sla-ok", "sla-warn", "sla-breached"];

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function duration(seconds) {
    var s = Math.max(0, Math.trunc(seconds));
    if (s < MINUTE_S) {
      return s + "s";
    }
    if (s < HOUR_S) {
      return Math.floor(s / MINUTE_S) + "m " + pad(s % MINUTE_S) + "s";
    }
    if (s < DAY_S) {
      return Math.floor(s / HOUR_S) + "h " + pad(Math.floor((s % HOUR_S) / MINUTE_S)) + "m";
    }
    return Math.floor(s / DAY_S) + "d " + pad(Math.floor((s % DAY_S) / HOUR_S)) + "h";
  }

  function instant(value) {
    var ms = Date.parse(value || "");
    return isNaN(ms) ? null : ms;
  }

  function slaClass(since, due, now) {
    if (now >= due) {
      return "sla-breached";
    }
    return since !== null && due - now > (due - since) * SLA_OK_SHARE ? "sla-ok" : "sla-warn";
  }

  function tickOne(element, now) {
    var at = instant(element.getAttribute("datetime"));
    if (at === null) {
      return;
    }
    var kind = element.getAttribute("data-tick");
    var text;
    if (kind === "waiting") {
      text = "waiting " + duration((now - at) / 1000);
    } else if (kind === "ago") {
      text = duration((now - at) / 1000) + " ago";
    } else if (kind === "sla") {
      var left = Math.trunc((at - now) / 1000);
      text = left > 0 ? "due in " + duration(left) : "overdue " + duration(-left);
      var waiting = element.closest(".queue-item");
      var since = waiting ? waiting.querySelector("time.waiting") : null;
      var wanted = slaClass(since ? instant(since.getAttribute("datetime")) : null, at, now);
      if (!element.classList.contains(wanted)) {
        element.classList.remove.apply(element.classList, SLA_CLASSES);
        element.classList.add(wanted);
      }
    } else {
      return;
    }
    if (element.textContent !== text) {
      element.textContent = text;
    }
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-tick]").forEach(function (element) {
      tickOne(element, now);
    });
  }

  // --- items and focus ------------------------------------------------------------------------------------------

  function items() {
    return Array.prototype.slice.call(document.querySelectorAll("#queue .queue-item"));
  }

  function itemOf(node) {
    return node instanceof Element ? node.closest("#queue .queue-item") : null;
  }

  function focusItem(item) {
    items().forEach(function (other) {
      other.tabIndex = other === item ? 0 : -1;
    });
    item.focus();
  }

  // An item's conversation: the href of its customer link (the claim route is that, plus "/claim").
  function conversationUrl(item) {
    var link = item.querySelector("a.customer");
    return link ? link.getAttribute("href") : null;
  }

  function open(item) {
    var href = conversationUrl(item);
    if (href) {
      window.location.assign(href);
    }
  }

  // --- flash and claim --------------------------------------------------------------------------------------------

  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = meta ? meta.getAttribute("content") || "" : "";

  function flash(text) {
    var box = document.getElementById("flash");
    if (!box) {
      return;
    }
    var line = document.createElement("p");
    line.className = "notice";
    line.textContent = text;
    box.replaceChildren(line);
  }

  // The answer is the desk's own markup (the conversation's status, or a flash): its text, never its HTML.
  function messageIn(body, status) {
    var found = new DOMParser().parseFromString(body, "text/html").querySelector(".notice, .error");
    var text = found ? found.textContent.trim() : "";
    return text || "Could not claim this conversation (" + status + ").";
  }

  function claim(item) {
    var button = item.querySelector("button[data-claim]");
    var url = conversationUrl(item);
    if (!button || !url || button.disabled) {
      return;
    }
    button.disabled = true;
    function again() {
      button.disabled = false;
    }
    fetch(url + "/claim", {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "HX-Request": "true",
        "X-CSRF-Token": csrfToken,
        "Content-Type": "application/x-www-form-urlencoded",
      },
      body: "",
    })
      .then(function (response) {
        if (response.ok) {
          open(item);
          return null;
        }
        var redirect = response.headers.get("HX-Redirect");
        if (redirect) {
          window.location.assign(redirect);
          return null;
        }
        return response.text().then(function (body) {
          flash(messageIn(body, response.status));
          again();
        });
      })
      .catch(function () {
        flash("The desk did not answer. Check the connection and try again.");
        again();
      });
  }

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("#queue button[data-claim]") : null;
    if (button) {
      event.preventDefault();
      claim(button.closest(".queue-item"));
    }
  });

  // --- keyboard ---------------------------------------------------------------------------------------------------

  var help = document.getElementById("queue-help");
  var helpToggle = document.querySelector(".shortcuts-toggle");

  function toggleHelp(show) {
    if (!help) {
      return;
    }
    var visible = show === undefined ? help.hidden : show;
    help.hidden = !visible;
    if (helpToggle) {
      helpToggle.setAttribute("aria-expanded", visible ? "true" : "false");
    }
  }

  if (helpToggle) {
    helpToggle.addEventListener("click", function () {
      toggleHelp();
    });
  }

  function typing(target) {
    return (
      target instanceof Element &&
      (target.closest("input, textarea, select") !== null || (target instanceof HTMLElement && target.isContentEditable))
    );
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) {
      return;
    }
    var list = items();
    var current = itemOf(document.activeElement);
    var index = current ? list.indexOf(current) : -1;
    switch (event.key) {
      case "j":
        if (list.length) {
          focusItem(list[Math.min(index + 1, list.length - 1)]);
        }
        break;
      case "k":
        if (list.length) {
          focusItem(list[Math.max(index - 1, 0)]);
        }
        break;
      case "Enter":
        if (!current || event.target !== current) {
          return; // on a link or a button inside the item, Enter does what it always does
        }
        open(current);
        break;
      case "c":
        if (!current) {
          return;
        }
        claim(current);
        break;
      case "n":
        if (!list.length) {
          return;
        }
        open(list[0]);
        break;
      case "?":
        toggleHelp();
        break;
      case "Escape":
        if (!help || help.hidden) {
          return;
        }
        toggleHelp(false);
        break;
      default:
        return;
    }
    event.preventDefault();
  });

  // --- live pushes ------------------------------------------------------------------------------------------------

  var remembered = null;
  var announcedCount = null;

  function countText() {
    var count = document.querySelector("#queue .count");
    return count ? count.textContent.trim() : null;
  }

  document.addEventListener("htmx:wsBeforeMessage", function () {
    var current = itemOf(document.activeElement);
    remembered = current ? { id: current.id, index: items().indexOf(current) } : null;
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    tick();
    if (remembered && !itemOf(document.activeElement)) {
      var list = items();
      var same = document.getElementById(remembered.id);
      var target = same && list.indexOf(same) >= 0 ? same : list[Math.min(remembered.index, list.length - 1)];
      if (target) {
        focusItem(target);
      }
    }
    remembered = null;
    var text = countText();
    var announcer = document.getElementById("queue-announcer");
    if (announcer && text !== null && text !== announcedCount) {
      announcer.textContent = text;
    }
    announcedCount = text;
  });

  var skillSelect = document.getElementById("queue-skill");
  if (skillSelect && skillSelect.form) {
    skillSelect.addEventListener("change", function () {
      skillSelect.form.requestSubmit();
    });
  }

  announcedCount = countText();
  tick();
  window.setInterval(tick, 1000);
})();
