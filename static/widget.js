// The Desk chat widget: one tag in any site opens the customer chat.
//
//   <script src="https://desk.example/static/widget.js" data-chat-url="https://desk.example/chat/<token>" async>
//   </script>
//
// or data-token="<token>" (the desk is then where this script came from). Optional: data-title (the panel's
// title), data-position="right|left", data-open="true" (open at once). The page gets `window.DeskChatWidget`
// ({open, close, toggle}) and nothing else.
//
// Isolation: the chat itself is an <iframe> of the desk's chat page (?embed=1): its own origin, document, CSS and
// scripts, out of the host page's reach and the other way round. The launcher and the panel around the frame live
// in a closed shadow root styled by a constructed stylesheet (adoptedStyleSheets), which no CSP blocks; host
// rules cannot reach inside, and ours cannot leak out. Only inherited properties cross a shadow boundary, so the
// root resets them with `all: initial !important` (in the cascade, an !important rule of the inner context beats
// the host page's !important ones). Nothing is injected into the host document but one element.
//
// Host pages with a Content-Security-Policy must allow the desk's origin in `script-src` (this file) and
// `frame-src` (the chat); the desk must list the host's origin in DESK_WIDGET_ORIGINS (or leave it at "*").
(function () {
  "use strict";

  if (window.DeskChatWidget) {
    return; // loaded twice: one launcher is enough
  }

  var script = document.currentScript || document.querySelector("script[src*='widget.js'][data-chat-url], script[src*='widget.js'][data-token]");
  if (!script) {
    return;
  }

  function chatUrl() {
    var base = new URL(script.src, window.location.href);
    var given = script.getAttribute("data-chat-url");
    var url;
    if (given) {
      url = new URL(given, base);
    } else if (script.getAttribute("data-token")) {
      // Next to this script's own /static/ directory: a desk served under a path prefix works too.
      url = new URL("../chat/" + encodeURIComponent(script.getAttribute("data-token")), base);
    } else {
      return null;
    }
    if ((url.protocol !== "https:" && url.protocol !== "http:") || !/\/chat\/[^/]+$/.test(url.pathname)) {
      return null;
    }
    url.searchParams.set("embed", "1");
    url.hash = "";
    return url;
  }

  var url;
  try {
    url = chatUrl();
  } catch (e) {
    url = null;
  }
  if (!url) {
    if (window.console) {
      window.console.error("Desk widget: set data-chat-url to the customer's chat URL, or data-token.");
    }
    return;
  }
  var title = (script.getAttribute("data-title") || "Chat with us").slice(0, 80);
  var side = script.getAttribute("data-position") === "left" ? "left" : "right";

  var CSS = [
    ":host { all: initial !important; position: fixed !important; z-index: 2147483000 !important;",
    "  bottom: 20px !important; display: block !important; visibility: visible !important; opacity: 1 !important;",
    "  transform: none !important; width: auto !important; height: auto !important; }",
    ":host([data-side=right]) { right: 20px !important; left: auto !important; }",
    ":host([data-side=left]) { left: 20px !important; right: auto !important; }",
    "* { box-sizing: border-box; }",
    ".root { font: 15px/1.4 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1d2330;",
    "  display: flex; flex-direction: column; align-items: flex-end; gap: 12px; }",
    ":host([data-side=left]) .root { align-items: flex-start; }",
    ".launcher { all: unset; box-sizing: border-box; width: 56px; height: 56px; border-radius: 50%;",
    "  background: #2f5bd3; color: #fff; display: flex; align-items: center; justify-content: center;",
    "  cursor: pointer; box-shadow: 0 4px 14px rgba(16, 24, 40, 0.28); position: relative; }",
    ".launcher:hover { background: #2549b0; }",
    ".launcher:focus-visible { outline: 3px solid #9db4f0; outline-offset: 2px; }",
    ".launcher svg { width: 26px; height: 26px; fill: currentColor; display: block; }",
    ".badge { position: absolute; top: -2px; right: -2px; min-width: 20px; height: 20px; padding: 0 5px;",
    "  border-radius: 10px; background: #b42318; color: #fff; font: 600 12px/20px system-ui, sans-serif;",
    "  text-align: center; }",
    ".badge[hidden], .panel[hidden] { display: none; }",
    ".panel { width: 370px; height: min(600px, calc(100vh - 110px)); background: #fff; border-radius: 12px;",
    "  overflow: hidden; display: flex; flex-direction: column; box-shadow: 0 10px 36px rgba(16, 24, 40, 0.3);",
    "  border: 1px solid #d9dee7; }",
    ".bar { display: flex; align-items: center; gap: 8px; padding: 10px 12px; background: #2f5bd3; color: #fff; }",
    ".title { all: unset; flex: 1; font: 600 15px/1.3 system-ui, sans-serif; color: #fff; overflow: hidden;",
    "  text-overflow: ellipsis; white-space: nowrap; }",
    ".close { all: unset; cursor: pointer; width: 28px; height: 28px; border-radius: 6px; display: flex;",
    "  align-items: center; justify-content: center; color: #fff; font: 20px/1 system-ui, sans-serif; }",
    ".close:hover { background: rgba(255, 255, 255, 0.18); }",
    ".close:focus-visible { outline: 2px solid #fff; }",
    "iframe { all: unset; display: block !important; flex: 1; width: 100%; border: 0; background: #fff; }",
    "@media (max-width: 480px) {",
    "  :host([data-open]) { top: 0 !important; bottom: 0 !important; left: 0 !important; right: 0 !important; }",
    "  :host([data-open]) .root { height: 100%; }",
    "  :host([data-open]) .panel { width: 100vw; height: 100%; border-radius: 0; border: 0; }",
    "  :host([data-open]) .launcher { display: none; }",
    "}",
  ].join("\n");

  var host = document.createElement("div");
  host.setAttribute("data-desk-chat-widget", "");
  host.setAttribute("data-side", side);
  var shadow = host.attachShadow({ mode: "closed" });
  if ("adoptedStyleSheets" in shadow && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    shadow.adoptedStyleSheets = [sheet];
  } else {
    var style = document.createElement("style"); // older browsers; a host CSP may refuse it
    style.textContent = CSS;
    shadow.appendChild(style);
  }

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  function chatIcon() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z");
    svg.appendChild(path);
    return svg;
  }

  var rootNode = make("div", "root");
  var panel = make("section", "panel");
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", title);
  var bar = make("div", "bar");
  var heading = make("h2", "title", title);
  var closeButton = make("button", "close", "\u00d7");
  closeButton.type = "button";
  closeButton.setAttribute("aria-label", "Close chat");
  bar.appendChild(heading);
  bar.appendChild(closeButton);
  panel.appendChild(bar);
  var launcher = make("button", "launcher");
  launcher.type = "button";
  launcher.setAttribute("aria-label", "Open chat: " + title);
  launcher.setAttribute("aria-expanded", "false");
  launcher.appendChild(chatIcon());
  var badge = make("span", "badge");
  badge.hidden = true;
  badge.setAttribute("aria-hidden", "true");
  launcher.appendChild(badge);
  rootNode.appendChild(panel);
  rootNode.appendChild(launcher);
  shadow.appendChild(rootNode);

  var frame = null;
  var isOpen = false;
  var unread = 0;

  function setUnread(count) {
    unread = count;
    badge.hidden = unread === 0;
    badge.textContent = unread > 9 ? "9+" : String(unread);
    launcher.setAttribute("aria-label", "Open chat: " + title + (unread ? " (" + unread + " new)" : ""));
  }

  // The frame is made on first open and kept: closing the panel leaves the chat connected.
  function ensureFrame() {
    if (frame) {
      return;
    }
    frame = document.createElement("iframe");
    frame.title = title;
    frame.src = url.href;
    frame.setAttribute("sandbox", "allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox");
    frame.setAttribute("referrerpolicy", "no-referrer");
    panel.appendChild(frame);
  }

  function open() {
    ensureFrame();
    isOpen = true;
    panel.hidden = false;
    host.setAttribute("data-open", "");
    launcher.setAttribute("aria-expanded", "true");
    setUnread(0);
    frame.focus();
  }

  function close() {
    var hadFocus = isOpen;
    isOpen = false;
    panel.hidden = true;
    host.removeAttribute("data-open");
    launcher.setAttribute("aria-expanded", "false");
    if (hadFocus) {
      launcher.focus();
    }
  }

  function toggle() {
    if (isOpen) {
      close();
    } else {
      open();
    }
  }

  launcher.addEventListener("click", toggle);
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      close();
    }
  });

  // Nudges from the chat frame (static/chat.js tellWidget): only from our frame, only from the desk's origin.
  window.addEventListener("message", function (event) {
    if (!frame || event.source !== frame.contentWindow || event.origin !== url.origin) {
      return;
    }
    var data = event.data;
    if (!data || typeof data !== "object" || data.source !== "desk-chat") {
      return;
    }
    if (data.type === "close") {
      close();
    } else if (data.type === "message" && !isOpen) {
      setUnread(unread + 1);
    }
  });

  var api = Object.freeze({ open: open, close: close, toggle: toggle });
  try {
    Object.defineProperty(window, "DeskChatWidget", { value: api, enumerable: false, configurable: false, writable: false });
  } catch (e) {
    return; // the host already owns the name: stay out of its way
  }

  function mount() {
    document.body.appendChild(host);
    if (script.getAttribute("data-open") === "true") {
      open();
    }
  }

  if (document.body) {
    mount();
  } else {
    document.addEventListener("DOMContentLoaded", mount);
  }
})();
