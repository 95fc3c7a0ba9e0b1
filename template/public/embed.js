// The brand's chat on its own website, in one line:
//   <script src="https://chat.example.com/public/embed.js" defer></script>
// Options, as data- attributes on that tag:
//   data-open="true"            open the chat when the page loads
//   data-position="left"        the button in the bottom-left corner (default: right)
//   data-theme="dark"           light or dark (default: the brand's default theme)
//   data-customer-token="..."   a customer token the brand's server signed for the signed-in customer
// It signs the browser in to the bot (as a visitor, or as the verified customer the token names),
// then loads Chainlit's widget from the bot's own origin and mounts it; nothing comes from anywhere
// else. The page's origin must be one of the bot's website_origins (ALLOWED_ORIGINS).
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__brandbotEmbedded) return;
  window.__brandbotEmbedded = true;
  var bot = script.src.replace(/\/public\/embed\.js(\?.*)?$/, "");
  var options = script.dataset;

  function signIn() {
    var headers = { "Content-Type": "application/json" };
    if (options.customerToken) headers["x-customer-token"] = options.customerToken;
    return fetch(bot + "/auth/header", { method: "POST", credentials: "include", headers: headers, body: "{}" })
      .then(function (answer) { if (!answer.ok) throw new Error("sign-in refused: HTTP " + answer.status); });
  }

  function settings() {
    return fetch(bot + "/public/widget.json").then(function (answer) { return answer.json(); });
  }

  function load(source) {
    return new Promise(function (resolve, reject) {
      var tag = document.createElement("script");
      tag.src = source;
      tag.charset = "utf-8";  // Chainlit serves it without a charset: never decode it as the host page's encoding
      tag.onload = resolve;
      tag.onerror = function () { reject(new Error("could not load " + source)); };
      document.head.appendChild(tag);
    });
  }

  // Chainlit's widget leaves some controls without an accessible name: name them, with Chainlit's own
  // translation in the brand's language where it has one.
  var unnamed = [
    ["#chainlit-copilot-button", null, "button_label"],
    ["#new-chat-button", ["navigation", "newChat", "button"], "New Chat"],
    ["#chat-submit", ["chat", "input", "actions", "send"], "Send message"],
    ["#stop-button", ["chat", "input", "actions", "stop"], "Stop Task"],
    ["#display-mode-button", null, "Display mode"],
    ["button:has(svg.lucide-maximize)", null, "Expand"],
    ["button:has(svg.lucide-minimize)", null, "Collapse"],
    [".positive-feedback-off, .positive-feedback-on", ["chat", "messages", "feedback", "positive"], "Helpful"],
    [".negative-feedback-off, .negative-feedback-on", ["chat", "messages", "feedback", "negative"], "Not helpful"],
    [".step button", ["chat", "messages", "actions", "copy", "button"], "Copy to clipboard"],
    ["[role=dialog]", null, "chat_label"],
  ];

  function named(element) {
    return element.getAttribute("aria-label") || element.getAttribute("aria-labelledby");
  }

  function lookup(translation, path) {
    var node = translation;
    for (var i = 0; node && path && i < path.length; i++) node = node[path[i]];
    return typeof node === "string" ? node : null;
  }

  function decorate(widget, translation) {
    var root = window.cl_shadowRootElement && window.cl_shadowRootElement.getRootNode();
    if (!root) return;
    unnamed.forEach(function (entry) {
      root.querySelectorAll(entry[0]).forEach(function (element) {
        if (named(element)) return;
        var label = lookup(translation, entry[1]) || widget[entry[2]] || entry[2];
        element.setAttribute("aria-label", label);
        if (element.id === "chainlit-copilot-button") element.setAttribute("title", label);
      });
    });
    if (options.position === "left" && !root.getElementById("brandbot-position")) {
      var style = document.createElement("style");
      style.id = "brandbot-position";
      style.textContent = "#chainlit-copilot-button{left:2rem;right:auto}";
      root.appendChild(style);
    }
  }

  function translations(language) {
    return fetch(bot + "/project/translations?language=" + encodeURIComponent(language), { credentials: "include" })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (data) { return data && data.translation; })
      .catch(function () { return null; });
  }

  function mount(widget) {
    window.mountChainlitWidget({
      chainlitServer: bot,
      theme: options.theme === "dark" || options.theme === "light" ? options.theme : widget.theme,
      opened: options.open === "true",
      customCssUrl: bot + "/public/widget.css",
    });
    translations(widget.language).then(function (translation) {
      var root = null;
      var timer = setInterval(function () {  // the widget renders its shadow root a moment later
        root = window.cl_shadowRootElement && window.cl_shadowRootElement.getRootNode();
        if (!root || !root.firstChild) return;
        clearInterval(timer);
        decorate(widget, translation);
        new MutationObserver(function () { decorate(widget, translation); })
          .observe(root, { childList: true, subtree: true });
      }, 50);
    });
  }

  function signedIn() {
    // A browser that blocks third-party cookies drops the sign-in cookie of a bot on another site.
    return fetch(bot + "/user", { credentials: "include" }).then(function (answer) { return answer.ok; });
  }

  function ownTabButton(widget) {
    // Without the cookie the widget cannot chat: offer the bot's own page, where the cookie is first-party.
    var link = document.createElement("a");
    link.href = bot + "/";
    link.target = "_blank";
    link.rel = "noopener";
    link.id = "brandbot-chat-link";
    link.textContent = widget.button_label;
    var side = options.position === "left" ? "left" : "right";
    link.style.cssText = "position:fixed;bottom:2rem;" + side + ":2rem;z-index:20;padding:0.9rem 1.2rem;" +
      "border-radius:2rem;background:hsl(" + widget.primary + ");color:#fff;font:600 1rem system-ui,sans-serif;" +
      "text-decoration:none;box-shadow:0 2px 8px rgba(0,0,0,.25)";
    document.body.appendChild(link);
  }

  function start() {
    Promise.all([settings(), signIn()])
      .then(function (results) {
        var widget = results[0];
        return signedIn().then(function (ok) {
          if (!ok) {
            console.warn("brandbot chat widget: this browser refused the bot's cookie; offering the chat in a tab");
            ownTabButton(widget);
            return null;
          }
          return load(bot + "/copilot/index.js").then(function () { return widget; });
        });
      })
      .then(function (widget) { if (widget) mount(widget); })
      .catch(function (error) { console.warn("brandbot chat widget:", error.message); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
