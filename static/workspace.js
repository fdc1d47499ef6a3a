// The conversation workspace's keyboard and small helpers (no inline scripts: the CSP forbids them).
// - recommended actions: desk.js inserts one into the reply box (click on `button[data-insert]`); here we note its
//   index in the reply form's hidden `recommendation` field, so the server records it "used" or "edited", and
//   Alt+1…9 clicks the matching button;
// - typing in the reply box tells the customer (a `typing` frame up the page socket, at most every 2 s);
// - "/" at the start of the reply box opens the canned replies (a listbox fetched from /desk/canned);
// - the Reply / Internal note tabs, the shortcuts list ("?"), and the shortcuts themselves:
//   c claim, Ctrl/Cmd+Enter send, Alt+Shift+R return to the AI, Alt+Shift+X resolve, g q or Esc q to the queue.
//   Single keys are ignored while typing in a field; the ones with modifiers work anywhere.
// Everything here reads the page afresh each time: its parts are swapped live by htmx.
(function () {
  "use strict";

  var TYPING_EVERY_MS = 2000;
  var PREFIX_WINDOW_MS = 1500;
  var CANNED_DELAY_MS = 120;
  var SAY_FOR_MS = 4000;

  var root = document.querySelector("[data-workspace]");
  if (!root) {
    return;
  }
  var conversationId = root.getAttribute("data-workspace");

  function byId(prefix) {
    return document.getElementById(prefix + conversationId);
  }

  function isField(element) {
    if (!(element instanceof Element)) {
      return false;
    }
    var tag = element.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || element.isContentEditable;
  }

  function isReplyBox(element) {
    return element instanceof HTMLTextAreaElement && element.id === "reply-text-" + conversationId;
  }

  var sayTimer = null;
  function say(text) {
    var flash = document.getElementById("flash");
    if (!flash) {
      return;
    }
    flash.textContent = text;
    clearTimeout(sayTimer);
    sayTimer = setTimeout(function () { flash.textContent = ""; }, SAY_FOR_MS);
  }

  function putCaretAtEnd(box) {
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  // --- recommended actions --------------------------------------------------------------------------------------

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("button[data-insert][data-recommendation]") : null;
    if (!button) {
      return;
    }
    var box = byId("reply-text-");
    if (!box) {
      var claimable = document.querySelector("#status-" + conversationId + " .claim-form");
      say(claimable ? "Claim this conversation to reply (press c)." : "Only the person who holds it can reply here.");
      return;
    }
    showComposerTab("reply");
    putCaretAtEnd(box);
    var field = box.form ? box.form.querySelector("input[name=recommendation]") : null;
    if (!field) {
      return;
    }
    var index = button.getAttribute("data-recommendation");
    var inserted = field.value ? field.value.split(",") : [];
    if (inserted.indexOf(index) === -1) {
      inserted.push(index);
    }
    field.value = inserted.join(",");
  });

  function insertRecommendation(number) {
    var bundle = byId("bundle-");
    var button = bundle ? bundle.querySelector('button[data-recommendation="' + (number - 1) + '"]') : null;
    if (button) {
      button.click();
    }
  }

  // The outcome forms start from what was done with the recommendations, until the agent picks a value.
  function followSuggestion() {
    var bundle = byId("bundle-");
    var suggested = bundle ? bundle.getAttribute("data-suggested-feedback") || "" : "";
    document.querySelectorAll("select.feedback-select[data-suggested]").forEach(function (select) {
      if (!select.hasAttribute("data-touched") && select.querySelector('option[value="' + suggested + '"]')) {
        select.value = suggested;
      }
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target instanceof HTMLSelectElement && event.target.classList.contains("feedback-select")) {
      event.target.setAttribute("data-touched", "");
    }
  });

  // --- the reply box: typing, canned replies ---------------------------------------------------------------------

  var lastTypingSent = 0;
  function tellTyping() {
    var now = Date.now();
    if (now - lastTypingSent < TYPING_EVERY_MS || !window.Desk) {
      return;
    }
    if (window.Desk.send({ type: "typing", conversation_id: conversationId })) {
      lastTypingSent = now;
    }
  }

  var canned = { timer: null, asked: 0, dismissed: null };

  function slashQuery(box) {
    var found = /^\/([^\n]*)$/.exec(box.value);
    return found && box.value !== canned.dismissed ? found[1] : null;
  }

  function cannedList() {
    return byId("canned-");
  }

  function cannedOptions() {
    var list = cannedList();
    return list ? Array.prototype.slice.call(list.querySelectorAll(".canned-option")) : [];
  }

  function cannedOpen() {
    var list = cannedList();
    return Boolean(list && !list.hidden);
  }

  function closeCanned() {
    var list = cannedList();
    if (list) {
      list.hidden = true;
    }
    var box = byId("reply-text-");
    if (box) {
      box.removeAttribute("aria-activedescendant");
    }
  }

  function activate(index) {
    var options = cannedOptions();
    var box = byId("reply-text-");
    options.forEach(function (option, i) {
      option.setAttribute("aria-selected", i === index ? "true" : "false");
    });
    if (!box) {
      return;
    }
    if (options[index]) {
      box.setAttribute("aria-activedescendant", options[index].id);
      options[index].scrollIntoView({ block: "nearest" });
    } else {
      box.removeAttribute("aria-activedescendant");
    }
  }

  function activeIndex() {
    var options = cannedOptions();
    for (var i = 0; i < options.length; i += 1) {
      if (options[i].getAttribute("aria-selected") === "true") {
        return i;
      }
    }
    return -1;
  }

  function fetchCanned(query) {
    canned.asked += 1;
    var ticket = canned.asked;
    var url = "/desk/canned?conversation=" + encodeURIComponent(conversationId) + "&q=" + encodeURIComponent(query);
    fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (text) {
        var box = byId("reply-text-");
        var list = cannedList();
        // An answer to an older query, or the box moved on: drop it.
        if (!text || ticket !== canned.asked || !box || !list || slashQuery(box) !== query) {
          return;
        }
        // A parsed document runs nothing; the fragment is escaped text in a known shape.
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById(list.id);
        if (!fresh) {
          return;
        }
        list.replaceWith(document.importNode(fresh, true));
        cannedList().hidden = false;
        activate(cannedOptions().length ? 0 : -1);
      }, function () {});
  }

  function useCanned(option) {
    var box = byId("reply-text-");
    if (!box || !option) {
      return;
    }
    box.value = option.getAttribute("data-body") || "";
    canned.dismissed = null;
    closeCanned();
    putCaretAtEnd(box);
    tellTyping();
  }

  document.addEventListener("input", function (event) {
    var box = event.target;
    if (!isReplyBox(box)) {
      return;
    }
    if (box.value.trim()) {
      tellTyping();
    } else if (box.form) {
      // An emptied box has dropped whatever recommendation was inserted into it.
      var field = box.form.querySelector("input[name=recommendation]");
      if (field) {
        field.value = "";
      }
    }
    var query = slashQuery(box);
    clearTimeout(canned.timer);
    if (query === null) {
      if (!/^\//.test(box.value)) {
        canned.dismissed = null;
      }
      closeCanned();
      return;
    }
    canned.timer = setTimeout(function () { fetchCanned(query); }, CANNED_DELAY_MS);
  });

  document.addEventListener("mousedown", function (event) {
    var option = event.target instanceof Element ? event.target.closest(".canned-option") : null;
    if (option) {
      event.preventDefault(); // keep the focus in the reply box
      useCanned(option);
    }
  });

  function onCannedKey(event) {
    var options = cannedOptions();
    var index = activeIndex();
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (options.length) {
        var step = event.key === "ArrowDown" ? 1 : -1;
        activate((index + step + options.length) % options.length);
      }
      event.preventDefault();
      return true;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.metaKey && index >= 0) {
      event.preventDefault();
      useCanned(options[index]);
      return true;
    }
    if (event.key === "Escape") {
      var box = byId("reply-text-");
      canned.dismissed = box ? box.value : null;
      closeCanned();
      event.preventDefault();
      return true;
    }
    return false;
  }

  // --- composer tabs -------------------------------------------------------------------------------------------

  function showComposerTab(which) {
    var tab = byId(which + "-tab-");
    if (!tab) {
      return;
    }
    document.querySelectorAll("#composer-" + conversationId + " [role=tab]").forEach(function (other) {
      var selected = other === tab;
      other.setAttribute("aria-selected", selected ? "true" : "false");
      other.setAttribute("tabindex", selected ? "0" : "-1");
      var panel = document.getElementById(other.getAttribute("aria-controls") || "");
      if (panel) {
        panel.hidden = !selected;
      }
    });
  }

  document.addEventListener("click", function (event) {
    var tab = event.target instanceof Element ? event.target.closest("[role=tab][data-tab]") : null;
    if (!tab) {
      return;
    }
    var which = tab.id.indexOf("note-tab-") === 0 ? "note" : "reply";
    showComposerTab(which);
    var box = byId(which + "-text-");
    if (box) {
      box.focus();
    }
  });

  function onTabKey(event) {
    var tab = event.target;
    if (!(tab instanceof Element) || tab.getAttribute("role") !== "tab") {
      return false;
    }
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") {
      return false;
    }
    var next = tab.id.indexOf("note-tab-") === 0 ? "reply" : "note";
    showComposerTab(next);
    var nextTab = byId(next + "-tab-");
    if (nextTab) {
      nextTab.focus();
    }
    event.preventDefault();
    return true;
  }

  // --- moves ---------------------------------------------------------------------------------------------------

  function openOutcome(action) {
    var details = document.getElementById(action + "-" + conversationId + "-outcome");
    if (!details) {
      say(action === "return" ? "You cannot return this conversation to the AI now." : "You cannot resolve this conversation now.");
      return;
    }
    details.open = true;
    var first = details.querySelector("textarea, select, input:not([type=hidden])");
    if (first) {
      first.focus();
    }
  }

  // One move's form open at a time: opening one closes the others.
  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (!(details instanceof HTMLDetailsElement) || !details.open || !details.classList.contains("outcome")) {
      return;
    }
    var moves = details.closest(".moves");
    (moves ? moves.querySelectorAll("details.outcome[open]") : []).forEach(function (other) {
      if (other !== details) {
        other.open = false;
      }
    });
  }, true);

  function claim() {
    var button = document.querySelector("#status-" + conversationId + " .claim-form button[type=submit]");
    if (button) {
      button.click();
    }
  }

  function send(target) {
    var box = target instanceof HTMLTextAreaElement && target.form && /(^| )(reply|note)-form( |$)/.test(target.form.className)
      ? target
      : byId("reply-text-");
    if (box && box.form && box.value.trim()) {
      closeCanned();
      box.form.requestSubmit();
    }
  }

  function toQueue() {
    window.location.assign("/desk");
  }

  function help() {
    var dialog = document.getElementById("shortcuts-help");
    if (dialog && !dialog.open) {
      dialog.showModal();
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) {
      return;
    }
    if (target.closest("[data-help-open]")) {
      help();
    } else if (target.closest("[data-help-close]")) {
      var dialog = document.getElementById("shortcuts-help");
      if (dialog) {
        dialog.close();
      }
    }
  });

  // --- the keyboard --------------------------------------------------------------------------------------------

  var prefix = { key: "", at: 0 };

  function withModifiers(event) {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      event.preventDefault();
      send(event.target);
      return true;
    }
    if (event.altKey && !event.ctrlKey && !event.metaKey) {
      if (event.shiftKey && event.code === "KeyR") {
        event.preventDefault();
        openOutcome("return");
        return true;
      }
      if (event.shiftKey && event.code === "KeyX") {
        event.preventDefault();
        openOutcome("resolve");
        return true;
      }
      var digit = /^Digit([1-9])$/.exec(event.code || "");
      if (!event.shiftKey && digit) {
        event.preventDefault();
        insertRecommendation(Number(digit[1]));
        return true;
      }
    }
    return false;
  }

  function singleKey(event) {
    var now = Date.now();
    var armed = now - prefix.at < PREFIX_WINDOW_MS ? prefix.key : "";
    prefix = { key: "", at: 0 };
    if (event.key === "q" && armed) {
      event.preventDefault();
      toQueue();
    } else if (event.key === "g" || event.key === "Escape") {
      prefix = { key: event.key, at: now };
    } else if (event.key === "c") {
      event.preventDefault();
      claim();
    } else if (event.key === "?") {
      event.preventDefault();
      help();
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.isComposing) {
      return;
    }
    var dialog = document.getElementById("shortcuts-help");
    if (dialog && dialog.open) {
      return; // the dialog closes itself with Escape
    }
    if (isReplyBox(event.target) && cannedOpen() && onCannedKey(event)) {
      return;
    }
    if (onTabKey(event) || withModifiers(event)) {
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    if (isField(event.target)) {
      if (event.key === "Escape") {
        // Esc leaves the field, and then "q" goes back to the queue.
        event.target.blur();
        prefix = { key: "Escape", at: Date.now() };
      }
      return;
    }
    singleKey(event);
  });

  // --- live updates --------------------------------------------------------------------------------------------

  var timelineNearBottom = true;
  function timelineItems() {
    return byId("timeline-items-");
  }

  function scrollTimelineDown() {
    var items = timelineItems();
    if (items) {
      items.scrollTop = items.scrollHeight;
    }
  }

  document.addEventListener("htmx:oobBeforeSwap", function () {
    var items = timelineItems();
    timelineNearBottom = !items || items.scrollHeight - items.scrollTop - items.clientHeight < 80;
  });

  document.addEventListener("htmx:oobAfterSwap", function () {
    if (timelineNearBottom) {
      scrollTimelineDown();
    }
    followSuggestion();
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target instanceof Element && target.id === "reply-form-" + conversationId) {
      scrollTimelineDown();
    }
    followSuggestion();
  });

  // After sending, the form is a fresh one: keep the agent's focus in its box. (The old form is detached by then,
  // so htmx announces the end of its request on the nearest element still in the page.)
  var refocus = "";
  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail && event.detail.elt;
    var id = source instanceof Element ? source.id : "";
    refocus = id === "reply-form-" + conversationId ? "reply" : id === "note-form-" + conversationId ? "note" : "";
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var box = refocus && event.detail && event.detail.successful ? byId(refocus + "-text-") : null;
    if (box && box.isConnected && (!document.activeElement || document.activeElement === document.body)) {
      box.focus();
    }
  });

  scrollTimelineDown();
  followSuggestion();
})();
