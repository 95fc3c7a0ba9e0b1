// Accessibility fixes for Chainlit's interface, copied verbatim into every brandbot project.
// Chainlit 2.12 leaves some icon buttons (the history sidebar's too) without an accessible name, a
// few elements without the role their ARIA needs, and the page without a language, a main landmark
// or a heading; this names them with Chainlit's own translations.
(function () {
  "use strict";
  var script = document.currentScript;
  var language = (script && script.dataset.language) || "en-US";
  // selector -> where Chainlit's translation names the button, and the English name without one
  var names = {
    "#new-chat-button": { path: ["navigation", "newChat", "button"], fallback: "New Chat" },
    "#chat-submit": { path: ["chat", "input", "actions", "send"], fallback: "Send message" },
    "#stop-button": { path: ["chat", "input", "actions", "stop"], fallback: "Stop Task" },
    ".step button": { path: ["chat", "messages", "actions", "copy", "button"], fallback: "Copy to clipboard" },
    // The history sidebar, shown to a signed-in browser while conversations are stored
    "#sidebar-trigger-button": { path: ["threadHistory", "sidebar", "actions", "open"], fallback: "Open sidebar" },
    "#search-chats-button": { path: ["threadHistory", "sidebar", "filters", "search"], fallback: "Search" },
    "#thread-options": { path: [], fallback: "Conversation options" },  // no translation for it in Chainlit
  };
  var translation = null;

  function lookup(path) {
    var node = translation;
    for (var i = 0; node && i < path.length; i++) node = node[path[i]];
    return typeof node === "string" ? node : null;
  }

  function hasName(element) {
    return element.getAttribute("aria-label") || element.getAttribute("aria-labelledby") ||
      element.textContent.trim() || element.getAttribute("title");
  }

  function improve() {
    var root = document.documentElement;
    if (root.lang !== language) root.lang = language;
    var app = document.getElementById("root");
    if (app && !app.getAttribute("role")) app.setAttribute("role", "main");
    if (app && !document.querySelector("h1")) {
      var heading = document.createElement("h1");
      heading.textContent = document.title;
      heading.className = "sr-only";
      heading.style.cssText = "position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0,0,0,0)";
      app.insertBefore(heading, app.firstChild);
    }
    // A conversation's menu trigger is a div that says it is expanded: give it the role that state needs.
    document.querySelectorAll('#thread-options[aria-expanded]:not([role])').forEach(function (element) {
      element.setAttribute("role", "button");
    });
    // The sidebar's menus are lists whose items are divs: mark them as the items they are.
    document.querySelectorAll('ul[data-sidebar="menu"] > div:not([role])').forEach(function (element) {
      element.setAttribute("role", "listitem");
    });
    Object.keys(names).forEach(function (selector) {
      var entry = names[selector];
      document.querySelectorAll(selector).forEach(function (button) {
        if (!hasName(button)) button.setAttribute("aria-label", lookup(entry.path) || entry.fallback);
      });
    });
  }

  function start() {
    improve();
    new MutationObserver(improve).observe(document.body, { childList: true, subtree: true });
  }

  fetch("/project/translations?language=" + encodeURIComponent(language))
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (data) { translation = data && data.translation; improve(); })
    .catch(function () {});
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
