// The customer's chat (CONTRACT.md section 7), plain JavaScript.
//
// Delivery: every (re)connect starts with {"type": "resume", "after_seq": last}, where `last` is the highest seq
// rendered; message frames are rendered strictly in seq order, each once (seq <= last is ignored; a frame further
// ahead means we missed some, so we ask again from `last`). Sending: each message gets a client_id and stays in
// `unsent` until its ack arrives; after a reconnect the unacknowledged ones are sent again with the same
// client_id, which the server stores once. Reconnects back off exponentially, with jitter.
// Everything from the server is shown with textContent, never as HTML.
(function () {
  "use strict";

  var BACKOFF_BASE_MS = 500;
  var BACKOFF_MAX_MS = 30000;
  var TYPING_SHOW_MS = 4000;
  var TYPING_SEND_EVERY_MS = 2500;
  var CLOSE_POLICY = 1008;

  var root = document.getElementById("chat");
  if (!root) {
    return;
  }
  var token = root.getAttribute("data-token") || "";
  var list = document.getElementById("chat-messages");
  var statusLine = document.getElementById("chat-status");
  var typingLine = document.getElementById("chat-typing");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-text");

  var lastSeq = 0;
  var resyncing = false;
  var unsent = new Map(); // client_id -> {text, element}, in the order typed, until acknowledged
  var socket = null;
  var reconnectTimer = null;
  var attempts = 0;
  var stopped = false;
  var lastStatus = null;
  var typingTimer = null;
  var lastTypingSent = 0;

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

  function authorLabel(author) {
    var kind = author && author.kind;
    if (kind === "customer") {
      return "You";
    }
    if (kind === "ai") {
      return "Assistant";
    }
    if (kind === "agent") {
      return (author && author.name) || "Agent";
    }
    return "";
  }

  function scrollDown() {
    list.scrollTop = list.scrollHeight;
  }

  function messageElement(frame) {
    var kind = (frame.author && frame.author.kind) || "system";
    if (kind === "system") {
      return element("li", "chat-line chat-system", frame.text);
    }
    var item = element("li", "chat-line chat-from-" + (kind === "customer" ? "customer" : kind === "ai" ? "ai" : "agent"));
    item.appendChild(element("span", "chat-author", authorLabel(frame.author)));
    item.appendChild(element("p", "chat-text", frame.text));
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
    if (frame.client_id) {
      delivered(frame.client_id);
    }
    // Sent messages not yet stored stay last, below everything the server has sequenced.
    list.insertBefore(messageElement(frame), firstPending());
    scrollDown();
  }

  // Acknowledged: stored by the server, no need to resend (shown as pending until its message frame arrives).
  function acknowledged(clientId) {
    var pending = unsent.get(clientId);
    unsent.delete(clientId);
    if (pending) {
      pending.element.classList.add("chat-acked");
    }
  }

  // Its message frame arrived: the sequenced copy replaces the pending one.
  function delivered(clientId) {
    unsent.delete(clientId);
    Array.prototype.forEach.call(list.querySelectorAll(".chat-pending"), function (node) {
      if (node.getAttribute("data-client-id") === clientId) {
        node.parentNode.removeChild(node);
      }
    });
  }

  function showStatus(frame) {
    var text;
    var agent = frame.agent && frame.agent.name;
    switch (frame.status) {
      case "queued":
        text = "Waiting for a person from our team" + (frame.position ? " (you are number " + frame.position + " in line)" : "") + ".";
        break;
      case "assigned":
        text = agent ? "You're now chatting with " + agent + "." : "You're now chatting with our team.";
        break;
      case "bot":
        text = lastStatus && lastStatus !== "bot" ? "You're back with the assistant." : "You're chatting with the assistant.";
        break;
      case "deferred":
        text = frame.message || "Our team will get back to you.";
        break;
      case "resolved":
        text = "This conversation is resolved. Write again any time.";
        break;
      case "abandoned":
        text = "This conversation was closed.";
        break;
      default:
        text = frame.message || "";
    }
    lastStatus = frame.status;
    statusLine.textContent = text;
    statusLine.setAttribute("data-status", String(frame.status || ""));
  }

  function showTyping(frame) {
    var who = authorLabel(frame.author) || "Someone";
    typingLine.textContent = who + " is typing…";
    typingLine.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { typingLine.hidden = true; }, TYPING_SHOW_MS);
  }

  function showError(frame) {
    list.insertBefore(element("li", "chat-line chat-error", frame.message || "Something went wrong."), firstPending());
    scrollDown();
  }

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
      typingLine.hidden = true;
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

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/ws/chat?token=" + encodeURIComponent(token));
    socket.addEventListener("open", function () {
      attempts = 0;
      resyncing = false;
      send({ type: "resume", after_seq: lastSeq });
      unsent.forEach(function (pending, clientId) {
        send({ type: "message", client_id: clientId, text: pending.text });
      });
    });
    socket.addEventListener("message", onFrame);
    socket.addEventListener("close", function (event) {
      socket = null;
      if (event.code === CLOSE_POLICY) {
        stopped = true;
        statusLine.textContent = "This chat link is no longer valid.";
        return;
      }
      if (!stopped) {
        statusLine.textContent = "Reconnecting…";
        // Exponential backoff with full jitter: many clients dropped at once do not all come back at once.
        var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, attempts));
        attempts += 1;
        reconnectTimer = setTimeout(connect, Math.random() * ceiling);
      }
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    if (!text.trim()) {
      return;
    }
    var clientId = newClientId();
    var shown = element("li", "chat-line chat-from-customer chat-pending");
    shown.setAttribute("data-client-id", clientId);
    shown.appendChild(element("span", "chat-author", "You"));
    shown.appendChild(element("p", "chat-text", text));
    list.appendChild(shown);
    unsent.set(clientId, { text: text, element: shown });
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
    if (now - lastTypingSent > TYPING_SEND_EVERY_MS && send({ type: "typing" })) {
      lastTypingSent = now;
    }
  });

  window.addEventListener("online", function () {
    if (!socket && !stopped) {
      attempts = 0;
      connect();
    }
  });

  connect();
})();
