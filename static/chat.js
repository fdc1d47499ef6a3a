// The customer's chat (CONTRACT.md section 7), plain JavaScript, alone or in the widget's frame.
//
// Delivery: every (re)connect starts with {"type": "resume", "after_seq": last}, where `last` is the highest seq
// rendered; message frames are rendered strictly in seq order, each once (seq <= last is ignored; a frame further
// ahead means we missed some, so we ask again from `last`). Sending: each message gets a client_id and stays in the
// outbox until its ack arrives; after a reconnect the unacknowledged ones are sent again with the same client_id,
// which the server stores once. The outbox lives in sessionStorage too, so a reload does not lose it either
// (per tab: two tabs never resend each other's messages). Reconnects back off exponentially, with full jitter.
// Everything from the server is shown with textContent, never as HTML; names lose their bidi and zero-width
// controls and sit in <bdi>, so they cannot disguise themselves or reorder the text around them.
(function () {
  "use strict";

  var BACKOFF_BASE_MS = 500;
  var BACKOFF_MAX_MS = 15000;
  var TYPING_SHOW_MS = 5000;
  var TYPING_SEND_EVERY_MS = 2000;
  var THANKS_SHOW_MS = 8000;
  var CLOSE_POLICY = 1008;
  var MAX_NAME_CHARS = 80;
  var NAME_CONTROLS = /[\u202A-\u202E\u2066-\u2069\u200B-\u200F\u2060\uFEFF\u061C]/g;
  var HUMAN_ENDS = { bot: true, resolved: true }; // the person's part is over: time to ask how it went

  var root = document.getElementById("chat");
  if (!root) {
    return;
  }
  var token = root.getAttribute("data-token") || "";
  var loadedUpTo = Number(root.getAttribute("data-last-seq")) || 0;
  var embedded = root.hasAttribute("data-embed") && window.parent !== window;
  var list = document.getElementById("chat-messages");
  var statusLine = document.getElementById("chat-status");
  var connectionLine = document.getElementById("chat-connection");
  var connectionText = document.getElementById("chat-connection-text");
  var retryButton = document.getElementById("chat-retry");
  var typingLine = document.getElementById("chat-typing");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-text");
  var rating = document.getElementById("chat-rating");
  var ratingForm = document.getElementById("chat-rating-form");
  var ratingName = document.getElementById("chat-rating-name");
  var ratingThanks = document.getElementById("chat-rating-thanks");
  var ratingSkip = document.getElementById("chat-rating-skip");

  var storageKey = "desk.chat." + token;
  var lastSeq = 0;
  var resyncing = false;
  var outbox = new Map(); // client_id -> {text, element}, in the order typed, until acknowledged
  var socket = null;
  var reconnectTimer = null;
  var attempts = 0;
  var stopped = false;
  var typingTimer = null;
  var lastTypingSent = 0;
  var thanksTimer = null;
  // Kept across reloads (sessionStorage): the last status seen, the person helping, an unanswered rating prompt,
  // a rating given while offline.
  var saved = { status: null, agent: "", ratingFor: null, ratingToSend: null };

  // --- storage ----------------------------------------------------------------------------------------------

  function save() {
    var pending = [];
    outbox.forEach(function (entry, clientId) {
      pending.push([clientId, entry.text]);
    });
    try {
      window.sessionStorage.setItem(storageKey, JSON.stringify({ outbox: pending, saved: saved }));
    } catch (e) {
      // Storage refused (a third-party frame, private mode, full): the outbox still lives in memory.
    }
  }

  function load() {
    var data = null;
    try {
      data = JSON.parse(window.sessionStorage.getItem(storageKey) || "null");
    } catch (e) {
      return;
    }
    if (!data || typeof data !== "object") {
      return;
    }
    if (data.saved && typeof data.saved === "object") {
      saved.status = typeof data.saved.status === "string" ? data.saved.status : null;
      saved.agent = typeof data.saved.agent === "string" ? cleanName(data.saved.agent) : "";
      saved.ratingFor = typeof data.saved.ratingFor === "string" ? cleanName(data.saved.ratingFor) : null;
      var given = data.saved.ratingToSend;
      if (given && typeof given === "object" && given.score >= 1 && given.score <= 5) {
        saved.ratingToSend = { type: "rating", score: Number(given.score), comment: String(given.comment || "") };
      }
    }
    (Array.isArray(data.outbox) ? data.outbox : []).forEach(function (entry) {
      if (Array.isArray(entry) && typeof entry[0] === "string" && typeof entry[1] === "string") {
        queueMessage(entry[0], entry[1]);
      }
    });
  }

  // --- small DOM helpers ------------------------------------------------------------------------------------

  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function cleanName(name) {
    return String(name || "").replace(NAME_CONTROLS, "").trim().slice(0, MAX_NAME_CHARS);
  }

  function nameElement(name, className) {
    return element("bdi", className, name);
  }

  // Fill `node` with parts: strings are text, {name} is a name in its own <bdi>.
  function setParts(node, parts) {
    node.textContent = "";
    parts.forEach(function (part) {
      node.appendChild(typeof part === "string" ? document.createTextNode(part) : nameElement(part.name));
    });
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function scrollDown() {
    list.scrollTop = list.scrollHeight;
  }

  function clock(at) {
    var moment = new Date(at);
    return isNaN(moment.getTime()) ? "" : moment.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // --- messages ---------------------------------------------------------------------------------------------

  function authorOf(author) {
    var kind = author && author.kind;
    if (kind === "customer") {
      return { kind: "customer", name: "You", role: "" };
    }
    if (kind === "ai") {
      return { kind: "ai", name: "Assistant", role: "AI" };
    }
    if (kind === "agent") {
      return { kind: "agent", name: cleanName(author.name) || "Our team", role: "Support team" };
    }
    return { kind: "system", name: "", role: "" };
  }

  function messageElement(frame, pending) {
    var who = authorOf(frame.author);
    if (who.kind === "system") {
      // The desk writes these, names included ("Ada joined the conversation."): no controls are needed here.
      var line = element("li", "chat-line chat-system");
      line.appendChild(element("p", "chat-text", String(frame.text || "").replace(NAME_CONTROLS, "")));
      return line;
    }
    var item = element("li", "chat-line chat-from-" + who.kind);
    var meta = element("p", "chat-meta");
    meta.appendChild(nameElement(who.name, "chat-author"));
    if (who.role) {
      meta.appendChild(element("span", "chat-role", who.role));
    }
    if (pending) {
      meta.appendChild(element("span", "chat-sending", "Sending…"));
    } else if (frame.at) {
      var time = element("time", "chat-time", clock(frame.at));
      time.setAttribute("datetime", String(frame.at));
      meta.appendChild(time);
    }
    item.appendChild(meta);
    var text = element("p", "chat-text", frame.text);
    text.setAttribute("dir", "auto");
    item.appendChild(text);
    return item;
  }

  function firstPending() {
    return list.querySelector(".chat-pending");
  }

  function renderMessage(frame) {
    var seq = Number(frame.seq);
    if (!(seq > lastSeq)) {
      return; // already shown
    }
    if (seq !== lastSeq + 1) {
      if (!resyncing) {
        resyncing = send({ type: "resume", after_seq: lastSeq }); // a gap: ask again from what we have
      }
      return;
    }
    resyncing = false;
    lastSeq = seq;
    var stick = nearBottom();
    if (typeof frame.client_id === "string") {
      delivered(frame.client_id);
    }
    var item = messageElement(frame, false);
    item.setAttribute("data-seq", String(seq));
    // Sent messages not yet stored stay last, below everything the server has sequenced.
    list.insertBefore(item, firstPending());
    var who = authorOf(frame.author);
    if (who.kind === "agent") {
      saved.agent = who.name;
    }
    if (who.kind !== "customer") {
      typingLine.hidden = true;
      if (seq > loadedUpTo) {
        tellWidget({ type: "message" });
      }
    }
    if (stick || who.kind === "customer") {
      scrollDown();
    }
  }

  function queueMessage(clientId, text) {
    var shown = messageElement({ author: { kind: "customer" }, text: text }, true);
    shown.classList.add("chat-pending");
    shown.setAttribute("data-client-id", clientId);
    list.appendChild(shown);
    outbox.set(clientId, { text: text, element: shown });
  }

  // Acknowledged: stored by the server, no need to resend (still shown as pending until its message frame).
  function acknowledged(clientId) {
    var entry = outbox.get(clientId);
    if (entry) {
      outbox.delete(clientId);
      entry.element.classList.add("chat-acked");
      var label = entry.element.querySelector(".chat-sending");
      if (label) {
        label.textContent = "Sent";
      }
      save();
    }
  }

  // Its message frame arrived: the sequenced copy replaces the pending one.
  function delivered(clientId) {
    var entry = outbox.get(clientId);
    outbox.delete(clientId);
    Array.prototype.forEach.call(list.querySelectorAll(".chat-pending"), function (node) {
      if (node.getAttribute("data-client-id") === clientId) {
        node.parentNode.removeChild(node);
      }
    });
    if (entry) {
      save();
    }
  }

  // --- status, typing, errors -------------------------------------------------------------------------------

  // The estimate comes from recent claim rates (the server rounds it to the half minute); none without claims.
  function etaText(seconds) {
    var value = Number(seconds);
    if (seconds === null || seconds === undefined || !isFinite(value) || value < 0) {
      return "";
    }
    if (value < 60) {
      return "Expected wait: under a minute.";
    }
    var minutes = Math.round(value / 60);
    return "Expected wait: about " + minutes + (minutes === 1 ? " minute." : " minutes.");
  }

  function statusParts(frame, previous) {
    var agent = cleanName(frame.agent && frame.agent.name);
    var position = Number(frame.position);
    switch (frame.status) {
      case "queued":
        var parts = ["Waiting for a person from our team."];
        if (Number.isInteger(position) && position > 0) {
          parts.push(" You're number " + position + " in line.");
        }
        var eta = etaText(frame.eta_s);
        if (eta) {
          parts.push(" " + eta);
        }
        return parts;
      case "assigned":
        return agent ? ["You're now chatting with ", { name: agent }, "."] : ["You're now chatting with our team."];
      case "bot":
        return [previous && previous !== "bot" ? "You're back with the assistant." : "You're chatting with the assistant."];
      case "deferred":
        var when = frame.deferred_until ? new Date(String(frame.deferred_until)) : null;
        if (when && !isNaN(when.getTime())) {
          return ["Our team will get back to you around " + when.toLocaleString([], { dateStyle: "full", timeStyle: "short" }) + "."];
        }
        return [String(frame.message || "Our team will get back to you.")];
      case "resolved":
        return ["This conversation is resolved. Write again any time."];
      case "abandoned":
        return ["This conversation was closed. Write again any time."];
      default:
        return [String(frame.message || "")];
    }
  }

  function showStatus(frame) {
    var status = String(frame.status || "");
    var previous = saved.status;
    setParts(statusLine, statusParts(frame, previous));
    statusLine.setAttribute("data-status", status);
    var agent = cleanName(frame.agent && frame.agent.name);
    if (status === "assigned" && agent) {
      saved.agent = agent;
    }
    if (status === "queued" || status === "assigned") {
      hideRating(); // a new handoff: a prompt still open was about the one before
    }
    if (previous === "assigned" && HUMAN_ENDS[status]) {
      offerRating(saved.agent);
    }
    saved.status = status;
    save();
  }

  function showTyping(frame) {
    var who = authorOf(frame.author);
    if (who.kind === "customer" || who.kind === "system") {
      return;
    }
    setParts(typingLine, who.kind === "ai" ? ["The assistant is typing…"] : [{ name: who.name }, " is typing…"]);
    typingLine.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { typingLine.hidden = true; }, TYPING_SHOW_MS);
  }

  function showError(frame) {
    if (frame.code === "nothing_to_rate") {
      return; // the prompt only shows after a person helped; a stale one changes nothing worth a message
    }
    var stick = nearBottom();
    list.insertBefore(element("li", "chat-line chat-error", frame.message || "Something went wrong."), firstPending());
    if (stick) {
      scrollDown();
    }
  }

  // --- rating -----------------------------------------------------------------------------------------------

  function offerRating(agent) {
    clearTimeout(thanksTimer);
    saved.ratingFor = agent || "";
    ratingForm.reset();
    ratingName.textContent = saved.ratingFor || "we";
    ratingForm.hidden = false;
    ratingThanks.hidden = true;
    ratingThanks.textContent = "";
    rating.hidden = false;
  }

  function hideRating() {
    saved.ratingFor = null;
    rating.hidden = true;
  }

  function sendRating() {
    if (saved.ratingToSend && send(saved.ratingToSend)) {
      saved.ratingToSend = null;
    }
    save();
  }

  ratingForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var chosen = ratingForm.querySelector("input[name=score]:checked");
    if (!chosen) {
      return;
    }
    var comment = document.getElementById("chat-rating-comment").value.trim();
    saved.ratingToSend = { type: "rating", score: Number(chosen.value) };
    if (comment) {
      saved.ratingToSend.comment = comment;
    }
    saved.ratingFor = null;
    sendRating(); // or on the next connect, if offline now
    ratingForm.hidden = true;
    ratingThanks.hidden = false;
    ratingThanks.textContent = "Thanks for your feedback";
    clearTimeout(thanksTimer);
    thanksTimer = setTimeout(function () { rating.hidden = true; }, THANKS_SHOW_MS);
  });

  ratingSkip.addEventListener("click", function () {
    saved.ratingFor = null;
    rating.hidden = true;
    save();
    input.focus();
  });

  // --- the socket -------------------------------------------------------------------------------------------

  function onFrame(event) {
    var frame;
    try {
      frame = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (!frame || typeof frame !== "object") {
      return;
    }
    if (frame.type === "message") {
      renderMessage(frame);
    } else if (frame.type === "ack") {
      acknowledged(frame.client_id);
    } else if (frame.type === "status") {
      showStatus(frame);
    } else if (frame.type === "typing") {
      showTyping(frame);
    } else if (frame.type === "error") {
      showError(frame);
    }
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function showConnection(text) {
    connectionLine.hidden = !text;
    retryButton.hidden = stopped;
    connectionText.textContent = text || "";
    root.classList.toggle("chat-offline", Boolean(text));
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (socket || stopped) {
      return;
    }
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + window.location.host + "/ws/chat?token=" + encodeURIComponent(token));
    socket = ws;
    ws.addEventListener("open", function () {
      if (socket !== ws) {
        return;
      }
      attempts = 0;
      resyncing = false;
      showConnection("");
      send({ type: "resume", after_seq: lastSeq });
      outbox.forEach(function (entry, clientId) {
        send({ type: "message", client_id: clientId, text: entry.text });
      });
      sendRating();
    });
    ws.addEventListener("message", function (event) {
      if (socket === ws) {
        onFrame(event);
      }
    });
    ws.addEventListener("close", function (event) {
      if (socket !== ws) {
        return;
      }
      socket = null;
      if (event.code === CLOSE_POLICY) {
        stopped = true;
        showConnection("This chat link is no longer valid.");
        input.disabled = true;
        return;
      }
      showConnection("Reconnecting…");
      // Exponential backoff with full jitter: many clients dropped at once do not all come back at once.
      var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, attempts));
      attempts += 1;
      reconnectTimer = setTimeout(connect, Math.random() * ceiling);
    });
  }

  function reconnectNow() {
    if (stopped || (socket && socket.readyState === WebSocket.OPEN)) {
      return;
    }
    if (socket) {
      // An attempt still under way may have started while offline and be doomed: start afresh.
      var doomed = socket;
      socket = null;
      doomed.close();
    }
    attempts = 0;
    connect();
  }

  // The device lost its network: the socket is most likely dead without knowing it yet. Close it now, so the
  // page says so and what the customer writes waits in the outbox; the `online` event brings it back at once.
  function wentOffline() {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.close();
    }
  }

  // --- the widget around the frame --------------------------------------------------------------------------

  // Only a nudge ("a message arrived", "close me"), never content: the host page is not trusted with the chat,
  // and "*" is the only target a frame that may sit in any site can name.
  function tellWidget(message) {
    if (embedded) {
      message.source = "desk-chat";
      window.parent.postMessage(message, "*");
    }
  }

  // --- the composer -----------------------------------------------------------------------------------------

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    if (!text.trim() || stopped) {
      return;
    }
    var clientId = newClientId();
    queueMessage(clientId, text);
    save();
    input.value = "";
    scrollDown();
    send({ type: "message", client_id: clientId, text: text });
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  input.addEventListener("input", function () {
    var now = Date.now();
    if (input.value.trim() && now - lastTypingSent >= TYPING_SEND_EVERY_MS && send({ type: "typing" })) {
      lastTypingSent = now;
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !event.defaultPrevented) {
      tellWidget({ type: "close" });
    }
  });

  retryButton.addEventListener("click", reconnectNow);
  window.addEventListener("online", reconnectNow);
  window.addEventListener("offline", wentOffline);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && !socket) {
      reconnectNow();
    }
  });

  load();
  if (saved.ratingFor !== null) {
    offerRating(saved.ratingFor);
  }
  connect();
})();
