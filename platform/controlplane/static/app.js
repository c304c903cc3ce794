/* MSP ITSM console shell: small enhancements over pages that work without JavaScript.
 *
 * - Writes the browser's IANA time zone to the `tz` cookie (the server shows times in it unless the
 *   user chose a zone on the Profile page; controlplane/console/middleware.py).
 * - Ctrl+K (⌘K on a Mac) opens the client switcher; `/` focuses the search box of the current client.
 * - The switcher is a combobox: type to search (htmx loads the matches), ArrowDown/ArrowUp to move,
 *   Enter to open the chosen client (the first match if none is chosen), Escape to close.
 */
(function () {
  "use strict";

  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var current = (document.cookie.match(/(?:^|;\s*)tz=([^;]*)/) || [])[1];
    if (zone && current !== encodeURIComponent(zone)) {
      document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) { /* no Intl: the server falls back to the client's zone, then UTC */ }

  function editable(el) {
    if (!el) return false;
    var tag = el.tagName;
    return el.isContentEditable || tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }

  function switcherInput() { return document.getElementById("switcher-q"); }
  function results() { return document.getElementById("switcher-results"); }
  function options() {
    var box = results();
    return box ? Array.prototype.slice.call(box.querySelectorAll('[role="option"]')) : [];
  }

  var active = -1;

  function setActive(index) {
    var opts = options();
    var input = switcherInput();
    active = opts.length ? ((index % opts.length) + opts.length) % opts.length : -1;
    opts.forEach(function (opt, i) { opt.setAttribute("aria-selected", i === active ? "true" : "false"); });
    if (input) {
      if (active >= 0) {
        input.setAttribute("aria-activedescendant", opts[active].id);
        opts[active].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }
  }

  function closeSwitcher() {
    var box = results();
    var input = switcherInput();
    if (box) box.innerHTML = "";
    if (input) {
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    }
    active = -1;
  }

  function openSwitcher() {
    var input = switcherInput();
    if (!input) return;
    input.focus();
    input.select();
  }

  document.addEventListener("keydown", function (event) {
    var key = event.key;
    if ((event.ctrlKey || event.metaKey) && !event.altKey && (key === "k" || key === "K")) {
      if (switcherInput()) {
        event.preventDefault();
        openSwitcher();
      }
      return;
    }
    if (key === "/" && !event.ctrlKey && !event.metaKey && !event.altKey && !editable(event.target)) {
      var search = document.querySelector("[data-global-search]");
      if (search) {
        event.preventDefault();
        search.focus();
        search.select();
      }
    }
  });

  document.addEventListener("keydown", function (event) {
    var input = switcherInput();
    if (!input || event.target !== input) return;
    var opts = options();
    if (event.key === "ArrowDown") {
      event.preventDefault();
      setActive(active + 1);
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      setActive(active < 0 ? opts.length - 1 : active - 1);
    } else if (event.key === "Enter") {
      var chosen = opts[active >= 0 ? active : 0];
      var link = chosen && chosen.querySelector("a");
      if (link) {
        event.preventDefault();
        window.location.assign(link.href);
      }
    } else if (event.key === "Escape") {
      event.preventDefault();
      closeSwitcher();
      input.blur();
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var box = results();
    var input = switcherInput();
    if (!box || !input || event.target !== box) return;
    input.setAttribute("aria-expanded", options().length ? "true" : "false");
    active = -1;
    options().forEach(function (opt) { opt.setAttribute("aria-selected", "false"); });
    input.removeAttribute("aria-activedescendant");
  });

  // Focus leaving the switcher (Tab away) closes its list; a click on one of its links keeps it.
  document.addEventListener("focusout", function (event) {
    var form = document.querySelector("[data-switcher]");
    if (form && form.contains(event.target) && !(event.relatedTarget && form.contains(event.relatedTarget))) {
      closeSwitcher();
    }
  });

  document.addEventListener("click", function (event) {
    var form = document.querySelector("[data-switcher]");
    if (form && !form.contains(event.target)) closeSwitcher();
  });
})();
