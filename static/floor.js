// The floor's assign menus. The staff list comes once per rendering of the floor (a <template>), not once per
// conversation, and is copied into each menu here (leaving out who holds the conversation now). A live push
// replaces the whole floor: what a supervisor had picked in a menu, and the focus, survive it.
(function () {
  "use strict";

  var picked = {};
  var focusedId = null;

  function fill() {
    var floor = document.getElementById("floor");
    var source = document.getElementById("floor-staff-options");
    if (!floor || !source) {
      return;
    }
    floor.querySelectorAll("select[data-staff-options]").forEach(function (menu) {
      if (menu.getAttribute("data-filled")) {
        return;
      }
      var current = menu.getAttribute("data-current") || "";
      Array.prototype.forEach.call(source.content.querySelectorAll("option"), function (option) {
        if (option.value !== current) {
          menu.appendChild(option.cloneNode(true));
        }
      });
      menu.setAttribute("data-filled", "true");
      var choice = picked[menu.id];
      if (choice && menu.querySelector('option[value="' + CSS.escape(choice) + '"]')) {
        menu.value = choice;
      }
    });
    var focused = focusedId && document.getElementById(focusedId);
    if (focused && document.activeElement !== focused) {
      focused.focus();
    }
  }

  function remember(event) {
    var target = event.detail && event.detail.target;
    if (!target || target.id !== "floor") {
      return;
    }
    var active = document.activeElement;
    focusedId = active && active.id && target.contains(active) ? active.id : null;
  }

  document.addEventListener("change", function (event) {
    var menu = event.target;
    if (menu instanceof HTMLSelectElement && menu.hasAttribute("data-staff-options")) {
      picked[menu.id] = menu.value;
    }
  });
  document.addEventListener("submit", function (event) {
    var menu = event.target instanceof Element ? event.target.querySelector("select[data-staff-options]") : null;
    if (menu) {
      delete picked[menu.id];
    }
  });
  document.addEventListener("htmx:oobBeforeSwap", remember);
  document.addEventListener("htmx:beforeSwap", remember);
  document.addEventListener("htmx:load", fill);
  document.addEventListener("DOMContentLoaded", fill);
})();
